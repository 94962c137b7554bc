import DomicileStorage
import DomicileTestSupport
import XCTest

final class DatabaseTests: XCTestCase {
    let directory = TemporaryDirectory()

    func test_database_opensWithDurabilityAndPrivacySettings() throws {
        let database = try Database(path: directory.file("a.sqlite"))
        XCTAssertEqual(try database.fetchOne("PRAGMA journal_mode") { $0.text(0) }, "wal")
        XCTAssertEqual(try database.fetchOne("PRAGMA synchronous") { $0.int(0) }, 2, "FULL")
        XCTAssertEqual(try database.fetchOne("PRAGMA secure_delete") { $0.int(0) }, 1)
        XCTAssertEqual(try database.fetchOne("PRAGMA foreign_keys") { $0.int(0) }, 1)
        XCTAssertEqual(try database.fetchOne("PRAGMA busy_timeout") { $0.int(0) }, 5000)
    }

    func test_statement_bindsAndReadsEveryType() throws {
        let database = try Database(path: directory.file("b.sqlite"))
        try database.executeScript("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
        try database.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                             [Int64.min, 2.5, "héllo ✓", [UInt8]([0, 1, 255]), String?.none])
        try database.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [1, 0.0, "", [UInt8](), "x"])
        let rows = try database.fetchAll("SELECT i, r, s, b, n FROM t ORDER BY rowid") { row in
            (row.int64(0), row.double(1), row.text(2), row.blob(3), row.optionalText(4), row.isNull(3))
        }
        XCTAssertEqual(rows[0].0, Int64.min)
        XCTAssertEqual(rows[0].1, 2.5)
        XCTAssertEqual(rows[0].2, "héllo ✓")
        XCTAssertEqual(rows[0].3, [0, 1, 255])
        XCTAssertNil(rows[0].4)
        XCTAssertEqual(rows[1].3, [])
        XCTAssertFalse(rows[1].5, "an empty blob is not NULL")
        XCTAssertEqual(rows[1].4, "x")
    }

    func test_storageError_carriesSQLButNeverBoundValues() throws {
        let database = try Database(path: directory.file("c.sqlite"))
        try database.executeScript("CREATE TABLE people (email TEXT PRIMARY KEY)")
        try database.execute("INSERT INTO people VALUES (?)", ["secret.person@example.com"])
        XCTAssertThrowsError(try database.execute("INSERT INTO people VALUES (?)", ["secret.person@example.com"])) { error in
            guard let error = error as? StorageError else { return XCTFail("\(error)") }
            XCTAssertTrue(error.isConstraintViolation)
            XCTAssertTrue(error.isUniqueViolation)
            XCTAssertEqual(error.sql, "INSERT INTO people VALUES (?)")
            XCTAssertFalse(error.description.contains("secret.person"))
            XCTAssertTrue(error.description.contains("UNIQUE"))
        }
        XCTAssertThrowsError(try database.execute("SELECT * FROM missing_table")) { error in
            XCTAssertTrue("\(error)".contains("missing_table"))
        }
    }

    func test_transaction_rollsBackWhenTheBodyThrows() throws {
        let database = try Database(path: directory.file("d.sqlite"))
        try database.executeScript("CREATE TABLE t (x INTEGER)")
        struct Boom: Error {}
        XCTAssertThrowsError(try database.transaction {
            try database.execute("INSERT INTO t VALUES (1)")
            throw Boom()
        })
        XCTAssertFalse(database.isInTransaction)
        XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM t") { $0.int(0) }, 0)
        try database.transaction { try database.execute("INSERT INTO t VALUES (2)") }
        XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM t") { $0.int(0) }, 1)
    }

    func test_checkpointTruncate_emptiesTheWAL() throws {
        let path = directory.file("e.sqlite")
        let database = try Database(path: path)
        try database.executeScript("CREATE TABLE t (x BLOB)")
        for _ in 0..<20 { try database.execute("INSERT INTO t VALUES (?)", [[UInt8](repeating: 7, count: 4000)]) }
        XCTAssertGreaterThan(try fileSize(path + "-wal"), 0)
        try database.checkpoint(.truncate)
        XCTAssertEqual(try fileSize(path + "-wal"), 0)
    }

    func test_secureDelete_overwritesDeletedContent() throws {
        let path = directory.file("f.sqlite")
        let database = try Database(path: path)
        try database.executeScript("CREATE TABLE t (x TEXT)")
        let marker = "DISTINCTIVE-MARKER-\(UUID().uuidString)"
        try database.execute("INSERT INTO t VALUES (?)", [marker])
        try database.execute("INSERT INTO t VALUES ('keep')")
        try database.checkpoint(.truncate)
        XCTAssertTrue(try contents(path).contains(marker))
        try database.execute("DELETE FROM t WHERE x = ?", [marker])
        try database.checkpoint(.truncate)
        XCTAssertFalse(try contents(path).contains(marker), "secure_delete leaves no copy in free space")
        XCTAssertFalse(try contents(path + "-wal").contains(marker))
    }

    private func fileSize(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
    }

    private func contents(_ path: String) throws -> String {
        String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
    }
}

final class MigratorTests: XCTestCase {
    let directory = TemporaryDirectory()

    let first = [Migration(version: 1, name: "subjects", sql: "CREATE TABLE subjects (pid TEXT PRIMARY KEY)")]
    var second: [Migration] {
        first + [Migration(version: 2, name: "receipts", sql: "CREATE TABLE receipts (id INTEGER PRIMARY KEY); CREATE INDEX r ON receipts(id)")]
    }

    func test_migrator_appliesPendingMigrationsOnce() throws {
        let database = try Database(path: directory.file("m.sqlite"))
        XCTAssertEqual(try Migrator(first).migrate(database, appliedAt: 1), [1])
        XCTAssertEqual(try Migrator(second).migrate(database, appliedAt: 2), [2])
        XCTAssertEqual(try Migrator(second).migrate(database, appliedAt: 3), [])
        let recorded = try database.fetchAll("SELECT version, name, applied_at FROM schema_migrations") { ($0.int(0), $0.text(1), $0.int(2)) }
        XCTAssertEqual(recorded.map(\.0), [1, 2])
        XCTAssertEqual(recorded.map(\.1), ["subjects", "receipts"])
        XCTAssertEqual(recorded.map(\.2), [1, 2])
    }

    func test_migrator_refusesADivergedOrNewerDatabase() throws {
        let database = try Database(path: directory.file("n.sqlite"))
        try Migrator(second).migrate(database, appliedAt: 1)
        XCTAssertThrowsError(try Migrator(first).migrate(database, appliedAt: 2)) {
            guard case StorageFailure.schemaNewerThanCode(2) = $0 else { return XCTFail("\($0)") }
        }
        let renamed = [Migration(version: 1, name: "people", sql: "SELECT 1")]
        XCTAssertThrowsError(try Migrator(renamed).migrate(database, appliedAt: 2)) {
            guard case StorageFailure.migrationDiverged(1, "people", "subjects") = $0 else { return XCTFail("\($0)") }
        }
    }

    func test_migrator_rollsBackAFailedMigration() throws {
        let database = try Database(path: directory.file("o.sqlite"))
        let broken = first + [Migration(version: 2, name: "broken", sql: "CREATE TABLE ok (x); CREATE TABLE subjects (x)")]
        XCTAssertThrowsError(try Migrator(broken).migrate(database, appliedAt: 1))
        XCTAssertEqual(try database.fetchOne("SELECT max(version) FROM schema_migrations") { $0.int(0) }, 1)
        XCTAssertNil(try database.fetchOne("SELECT name FROM sqlite_master WHERE name = 'ok'") { $0.text(0) })
    }

    /// A conversion runs after the migration's SQL and commits with it; one
    /// that throws (a stored value that does not decode) leaves nothing behind.
    func test_migrator_convertsInTheMigrationsTransaction_andRollsBackWhenTheConversionThrows() throws {
        let database = try Database(path: directory.file("p.sqlite"))
        try Migrator(first).migrate(database, appliedAt: 1)
        try database.execute("INSERT INTO subjects (pid) VALUES ('a'), ('b')")
        let copyIDs = Migration(version: 2, name: "ids", sql: "CREATE TABLE ids (pid TEXT PRIMARY KEY)") { database in
            for pid in try database.fetchAll("SELECT pid FROM subjects ORDER BY pid", [], { $0.text(0) }) {
                guard pid != "bad" else { throw StorageError.corrupt(table: "subjects", column: "pid") }
                try database.execute("INSERT INTO ids (pid) VALUES (?)", [pid])
            }
        }
        let other = try Database(path: directory.file("q.sqlite"))
        try Migrator(first).migrate(other, appliedAt: 1)
        try other.execute("INSERT INTO subjects (pid) VALUES ('a'), ('bad')")
        XCTAssertThrowsError(try Migrator(first + [copyIDs]).migrate(other, appliedAt: 2)) {
            XCTAssertTrue(($0 as? StorageError)?.isCorrupt == true, "\($0)")
            XCTAssertTrue("\($0)".contains("subjects.pid"), "\($0)")
        }
        XCTAssertEqual(try other.fetchOne("SELECT max(version) FROM schema_migrations") { $0.int(0) }, 1)
        XCTAssertNil(try other.fetchOne("SELECT name FROM sqlite_master WHERE name = 'ids'") { $0.text(0) })

        XCTAssertEqual(try Migrator(first + [copyIDs]).migrate(database, appliedAt: 2), [2])
        XCTAssertEqual(try database.fetchAll("SELECT pid FROM ids ORDER BY pid") { $0.text(0) }, ["a", "b"])
    }
}
