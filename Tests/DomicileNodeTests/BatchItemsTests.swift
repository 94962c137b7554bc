@testable import DomicileNode
import DomicileStorage
import DomicileTestSupport
import XCTest

/// `BatchItems.runAll` on a real SQLite file: items run without a savepoint
/// each, and an item refused in the middle of its writes is undone alone.
final class BatchItemsTests: XCTestCase {
    let directory = TemporaryDirectory()

    private func database() throws -> Database {
        let database = try Database(path: directory.file("items.sqlite"))
        try database.executeScript("CREATE TABLE rows (item INTEGER NOT NULL, part INTEGER NOT NULL, PRIMARY KEY (item, part)) STRICT")
        return database
    }

    private func rows(_ database: Database) throws -> [Int] {
        try database.fetchAll("SELECT item * 10 + part FROM rows ORDER BY 1") { $0.int(0) }
    }

    func test_noRefusal_onePassWithoutASavepointPerItem() throws {
        let database = try database()
        var passes: [String] = []
        let results = try database.transaction {
            try BatchItems.runAll(in: database) { runItem in
                passes.append("\(runItem)")
                return try (0..<3).map { item in
                    try runItem {
                        try database.execute("INSERT INTO rows VALUES (?, 1)", [item])
                        return item
                    }
                }
            }
        }
        XCTAssertEqual(passes, ["bare"])
        XCTAssertEqual(results.map { try? $0.get() }, [0, 1, 2])
        XCTAssertEqual(try rows(database), [1, 11, 21])
    }

    func test_aRefusalAfterWrites_undoesThatItemAlone_inASecondPass() throws {
        let database = try database()
        var passes = 0
        let results = try database.transaction {
            try BatchItems.runAll(in: database) { runItem in
                passes += 1
                return try (0..<4).map { item in
                    try runItem {
                        try database.execute("INSERT INTO rows VALUES (?, 1)", [item])
                        if item == 2 { throw DomainError(.invalid, code: "refused_late", detail: "item 2") }
                        try database.execute("INSERT INTO rows VALUES (?, 2)", [item])
                        return item
                    }
                }
            }
        }
        XCTAssertEqual(passes, 2)
        XCTAssertEqual(results.map { try? $0.get() }, [0, 1, nil, 3])
        guard case .failure(let refusal) = results[2] else { return XCTFail("item 2 was not refused") }
        XCTAssertEqual(refusal.code, "refused_late")
        XCTAssertEqual(try rows(database), [1, 2, 11, 12, 31, 32], "item 2's first row was undone, the others' rows kept")
        XCTAssertFalse(database.isInTransaction)
    }

    func test_aFailureThatIsNotARefusal_failsTheBatch() throws {
        let database = try database()
        struct Broken: Error {}
        XCTAssertThrowsError(try database.transaction {
            try BatchItems.runAll(in: database) { runItem in
                try (0..<2).map { item in
                    try runItem {
                        try database.execute("INSERT INTO rows VALUES (?, 1)", [item])
                        if item == 1 { throw Broken() }
                    }
                }
            }
        }) { XCTAssertTrue($0 is Broken) }
        XCTAssertEqual(try rows(database), [])
    }
}
