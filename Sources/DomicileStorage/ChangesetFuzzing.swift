import Foundation

/// What `Database.apply` is fuzzed for (Tests/Fuzz/run changeset): a
/// changeset is a peer's input, so on any bytes it never traps; a refused
/// one throws `ChangesetError` and leaves the database as it was; an
/// accepted one leaves it consistent (STRICT types and b-trees check).
/// Each input is applied to the same fixture (a few rows in tables with and
/// without rowid, STRICT and not, blobs, a foreign key and a table without
/// primary key), put back as it was after an input that applied.
/// Violations stop the process, which is what a fuzzer notices.
public enum ChangesetFuzzing {
    static let schema = """
        CREATE TABLE parents (id TEXT PRIMARY KEY, payload BLOB NOT NULL, count INTEGER) STRICT;
        CREATE TABLE children (
            parent TEXT NOT NULL REFERENCES parents (id),
            position INTEGER NOT NULL,
            weight REAL,
            PRIMARY KEY (parent, position)
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE notes (seq INTEGER PRIMARY KEY, body);
        CREATE TABLE unkeyed (a TEXT, b BLOB);
        """
    static let rows = """
        INSERT INTO parents VALUES ('p1', x'0001feff', 1), ('p2', x'', NULL), ('p3', x'70', -9223372036854775808);
        INSERT INTO children VALUES ('p1', 0, 0.5), ('p1', 1, NULL), ('p2', 0, -1e308);
        INSERT INTO notes VALUES (1, 'one'), (2, x'02'), (7, 7.5);
        INSERT INTO unkeyed VALUES ('u', x'00');
        """
    static let reset = "DELETE FROM children; DELETE FROM parents; DELETE FROM notes; DELETE FROM unkeyed;"

    public static func check(_ data: UnsafeRawBufferPointer) {
        apply(Array(data))
    }

    /// Applies `bytes` to the fixture and checks the outcome, then puts the
    /// fixture back as it was; returns whether the changeset was applied.
    @discardableResult
    public static func apply(_ bytes: [UInt8]) -> Bool {
        let database = fixture
        let before = try! database.contentDump()
        do {
            try database.apply(Changeset(bytes: bytes))
        } catch is ChangesetError {
            precondition(try! database.contentDump() == before, "a refused changeset left changes behind")
            return false
        } catch {
            preconditionFailure("a changeset failed with an error that is not a ChangesetError: \(error)")
        }
        precondition(try! database.fetchOne("PRAGMA quick_check") { $0.text(0) } == "ok",
                     "an applied changeset failed the quick check")
        try! database.transaction { try database.executeScript(reset + rows) }
        return true
    }

    /// One fixture per process, in a directory of its own under the
    /// temporary directory. Fuzzing runs on one thread.
    nonisolated(unsafe) static let fixture: Database = try! makeFixture(named: "fixture")

    private static func makeFixture(named name: String, schema: String = schema, rows: String = rows) throws -> Database {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("domicile-fuzz-changeset-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("\(name).sqlite").path
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        let database = try Database(path: path)
        try database.execute("PRAGMA synchronous = OFF")  // a scratch file: no fsync per input
        try database.executeScript(schema)
        try database.executeScript(rows)
        return database
    }

    /// The seed corpus (Tests/Fuzz/corpus/changeset): changesets and a
    /// patchset taken on a copy of the fixture, which apply; and ones that
    /// must be refused — a conflicting insert, a stale update, a delete of a
    /// missing row, a table with other columns, a table the fixture lacks.
    public static func seeds() throws -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        func capture(_ name: String, on database: Database, patchset: Bool = false, _ sql: String) throws {
            let capture = try database.captureChanges(in: ["parents", "children", "notes"])
            try database.execute("BEGIN IMMEDIATE")
            try database.executeScript(sql)
            let changes = patchset ? try capture.patchset() : try capture.changeset()
            try database.execute("ROLLBACK")
            seeds.append((name, changes.bytes))
        }
        let copy = try makeFixture(named: "leader")
        try capture("insert.changeset", on: copy, """
            INSERT INTO parents VALUES ('p4', x'00112233445566778899aabbccddeeff', 4);
            INSERT INTO children VALUES ('p4', 0, 1.25), ('p4', 1, NULL);
            INSERT INTO notes (body) VALUES ('new');
            """)
        try capture("update.changeset", on: copy, "UPDATE parents SET payload = x'ff', count = count + 1 WHERE id = 'p1'")
        try capture("delete.changeset", on: copy, "DELETE FROM children WHERE parent = 'p1'; DELETE FROM notes WHERE seq = 2")
        let mixed = """
            INSERT INTO parents VALUES ('p5', x'05', NULL);
            UPDATE children SET weight = 2.0 WHERE parent = 'p2';
            DELETE FROM children WHERE parent = 'p1' AND position = 1;
            UPDATE notes SET body = NULL WHERE seq = 7;
            """
        try capture("mixed.changeset", on: copy, mixed)
        try capture("mixed.patchset", on: copy, patchset: true, mixed)

        let empty = try makeFixture(named: "empty", rows: "")
        try capture("conflict-insert-existing.changeset", on: empty, "INSERT INTO parents VALUES ('p1', x'01', 1)")
        let stale = try makeFixture(named: "stale", rows: rows + "UPDATE parents SET count = 99 WHERE id = 'p1';")
        try capture("conflict-stale-update.changeset", on: stale, "UPDATE parents SET count = 100 WHERE id = 'p1'")
        let orphan = try makeFixture(named: "orphan", rows: rows + "INSERT INTO parents VALUES ('p9', x'', 9);")
        // Applies: foreign keys are the leader's to enforce.
        try capture("orphan-child.changeset", on: orphan, "INSERT INTO children VALUES ('p9', 0, 0.0)")
        let extra = try makeFixture(named: "extra", rows: rows + "INSERT INTO notes VALUES (8, 'eight');")
        try capture("conflict-delete-missing.changeset", on: extra, "DELETE FROM notes WHERE seq = 8")
        let wider = try makeFixture(named: "wider", schema: schema.replacingOccurrences(of: "count INTEGER)", with: "count INTEGER, extra TEXT)"),
                                    rows: "")
        try capture("other-schema-columns.changeset", on: wider, "INSERT INTO parents VALUES ('p1', x'01', 1, 'x')")
        let other = try makeFixture(named: "other", schema: "CREATE TABLE strangers (id INTEGER PRIMARY KEY, name TEXT);", rows: "")
        let strangers = try other.capturingChanges { try other.execute("INSERT INTO strangers VALUES (1, 'x')") }
        seeds.append(("other-schema-table.changeset", strangers.changeset.bytes))
        return seeds
    }
}
