import DomicileStorage
import Foundation

/// A one-table schema used to exercise storage on its own: the self-check,
/// the crash test's load generator and the storage benchmark.
enum ProbeSchema {
    static let migrator = Migrator([
        Migration(version: 1, name: "probe rows", sql: """
            CREATE TABLE probe_rows (
                id INTEGER PRIMARY KEY,
                writer INTEGER NOT NULL,
                payload BLOB NOT NULL
            ) STRICT;
            """),
    ])

    static func insert(_ database: Database, id: Int64, writer: Int, payload: [UInt8]) throws {
        try database.execute("INSERT INTO probe_rows (id, writer, payload) VALUES (?, ?, ?)", [id, writer, payload])
    }

    static func count(_ database: Database) throws -> Int {
        try database.fetchOne("SELECT count(*) FROM probe_rows") { $0.int(0) } ?? 0
    }
}

struct StorageCheckCommand: Command {
    static let path = ["storage", "check"]
    static let summary = "check that durable storage works in a directory"
    static let help = """
        [--data-dir DIR]

        Creates a scratch database in DIR (default: a new temporary directory), checks the
        SQLite settings Domicile relies on (WAL, synchronous=FULL, secure_delete, foreign keys),
        runs 500 concurrent group-commit writes with one failing on purpose, reopens the file and
        checks that every acknowledged write is there and the failed one is not.
        """

    static let writers = 500

    static func run(_ arguments: inout Arguments) async throws {
        let directory = try arguments.option("data-dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-check-\(UUID().uuidString)").path
        try arguments.finish()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent("storage-check.sqlite")
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }

        let store = try Store(path: path, migrator: ProbeSchema.migrator, now: unixNow())
        let settings = try store.read { database in
            try database.fetchOne("""
                SELECT (SELECT journal_mode FROM pragma_journal_mode), (SELECT synchronous FROM pragma_synchronous),
                       (SELECT secure_delete FROM pragma_secure_delete), (SELECT foreign_keys FROM pragma_foreign_keys)
                """) { row in (row.text(0), row.int(1), row.int(2), row.int(3)) }
        }
        guard let settings, settings.0 == "wal", settings.1 == 2, settings.2 == 1, settings.3 == 1 else {
            throw CLIError.failed("SQLite settings are not in force (journal_mode, synchronous, secure_delete, foreign_keys)")
        }
        Output.line("ok  SQLite \(Database.libraryVersion): WAL, synchronous=FULL, secure_delete=ON, foreign_keys=ON")

        let failing = writers / 2
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    do {
                        try await store.write { database in
                            try ProbeSchema.insert(database, id: Int64(writer), writer: writer, payload: [UInt8(writer & 0xFF)])
                            if writer == failing { throw CLIError.failed("deliberate failure") }
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        let statistics = store.writer.currentStatistics
        store.close()
        let acknowledged = outcomes.filter { $0 }.count
        guard acknowledged == writers - 1 else {
            throw CLIError.failed("expected \(writers - 1) acknowledged writes, got \(acknowledged)")
        }
        Output.line("ok  \(acknowledged) concurrent writes acknowledged in \(statistics.commits) commits, 1 failed alone")

        let reopened = try Database(path: path)
        let count = try ProbeSchema.count(reopened)
        let failedPresent = try reopened.fetchOne("SELECT 1 FROM probe_rows WHERE id = ?", [failing]) { _ in true } ?? false
        guard count == acknowledged, !failedPresent else {
            throw CLIError.failed("after reopening: \(count) rows (expected \(acknowledged)), failed row present: \(failedPresent)")
        }
        Output.line("ok  reopened \(path): all \(count) acknowledged rows present, the failed write absent")
        Output.line("storage check passed")
    }

}

/// Load generator for the crash test (Tests/DomicileCLITests): writes rows
/// through the group-commit writer from concurrent tasks and prints
/// `ack <id>` as soon as each write is acknowledged, until killed or done.
struct StorageLoadCommand: Command {
    static let path = ["storage", "load"]
    static let summary = "write rows concurrently, printing each acknowledged id (crash tests)"
    static let help = """
        --db PATH [--run N] [--writers N] [--count N]

        Each of --writers tasks (default 16) inserts rows with ids N*10^9 + writer*10^6 + i and
        prints `ack <id>` once the write is durable. --count is per writer (default: until killed).
        """

    static func run(_ arguments: inout Arguments) async throws {
        let path = try arguments.required("db")
        let run = try arguments.integer("run", default: 0, range: 0...9_000)
        let writers = try arguments.integer("writers", default: 16, range: 1...999)
        let count = try arguments.integer("count", default: 0, range: 0...999_999)
        try arguments.finish()

        let store = try Store(path: path, migrator: ProbeSchema.migrator, now: unixNow())
        Output.line("ready")
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var index = 0
                    while count == 0 || index < count {
                        let id = Int64(run) * 1_000_000_000 + Int64(writer) * 1_000_000 + Int64(index)
                        let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: id), count: 100)
                        do {
                            try await store.write { try ProbeSchema.insert($0, id: id, writer: writer, payload: payload) }
                            Output.line("ack \(id)")
                        } catch {
                            Output.error("write \(id) failed: \(error)")
                        }
                        index += 1
                    }
                }
            }
        }
        store.close()
    }
}
