import DomicileStorage
import DomicileTestSupport
import XCTest

/// A stored value that does not decode is corrupt data: a typed error that
/// names the table and column, never the value.
final class CorruptValueTests: XCTestCase {
    let directory = TemporaryDirectory()

    func test_rowDecode_throwsCorruptNamingTableAndColumn_notTheValue() throws {
        enum Colour: String { case red, blue }
        let database = try Database(path: directory.file("c.sqlite"))
        try database.executeScript("CREATE TABLE paint (colour TEXT, shade TEXT); INSERT INTO paint VALUES ('red', NULL), ('mauve', 'secret');")
        let first = try database.fetchOne("SELECT colour, shade FROM paint WHERE rowid = 1") { row throws(StorageError) in
            (try row.decode(0, table: "paint", Colour.init(rawValue:)), try row.decodeOptional(1, table: "paint", Colour.init(rawValue:)))
        }
        XCTAssertEqual(first?.0, .red)
        XCTAssertNil(first?.1 ?? nil)
        XCTAssertThrowsError(try database.fetchOne("SELECT colour FROM paint WHERE rowid = 2") { row throws(StorageError) in
            try row.decode(0, table: "paint", Colour.init(rawValue:))
        }) { error in
            let storage = error as? StorageError
            XCTAssertEqual(storage?.isCorrupt, true)
            XCTAssertTrue("\(error)".contains("paint.colour"), "\(error)")
            XCTAssertFalse("\(error)".contains("mauve"), "\(error)")
        }
        XCTAssertThrowsError(try database.fetchOne("SELECT shade FROM paint WHERE rowid = 2") { row throws(StorageError) in
            try row.decodeOptional(0, table: "paint", Colour.init(rawValue:))
        }) { XCTAssertFalse("\($0)".contains("secret"), "\($0)") }
    }
}
