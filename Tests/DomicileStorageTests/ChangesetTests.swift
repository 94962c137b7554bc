import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// A leader's transactions captured as changesets and applied in order on a
/// follower (the region log's entries: docs/DECISIONS.md, "Region log
/// entries: SQLite changesets").
final class ChangesetTests: XCTestCase {
    let directory = TemporaryDirectory()

    /// Tables with and without rowid, STRICT and not, an INTEGER PRIMARY KEY
    /// assigned by SQLite, blobs, reals, NULLs and a foreign key.
    static let schema = """
        CREATE TABLE subjects (pid TEXT PRIMARY KEY, key BLOB NOT NULL, created_at INTEGER NOT NULL) STRICT;
        CREATE TABLE identities (
            pid TEXT NOT NULL REFERENCES subjects (pid) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            sealed BLOB NOT NULL,
            PRIMARY KEY (pid, kind)
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE receipts (receipt_id TEXT PRIMARY KEY, pid TEXT NOT NULL, seq INTEGER NOT NULL, score REAL,
                               hash BLOB NOT NULL, UNIQUE (pid, seq)) STRICT;
        CREATE TABLE audit (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, detail, hash BLOB NOT NULL);
        """

    func makeDatabase(_ name: String, schema: String = schema) throws -> Database {
        let database = try Database(path: directory.file(name))
        try database.executeScript(schema)
        return database
    }

    /// What the leader runs: values the follower could not compute again
    /// (random blobs, the time, `max(seq) + 1`, SQLite's next rowid).
    static let transactions = [
        """
        INSERT INTO subjects VALUES ('a', randomblob(32), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
        INSERT INTO identities VALUES ('a', 'email', randomblob(40)), ('a', 'phone', x'');
        INSERT INTO receipts VALUES (lower(hex(randomblob(8))), 'a', 1, 0.25, randomblob(32));
        INSERT INTO audit (at, detail, hash) VALUES (1, 'register', randomblob(32));
        """,
        """
        INSERT INTO subjects VALUES ('b', x'00ff', 2);
        INSERT INTO receipts SELECT lower(hex(randomblob(8))), 'a', max(seq) + 1, NULL, randomblob(32) FROM receipts WHERE pid = 'a';
        INSERT INTO audit (at, detail, hash) VALUES (2, 7.5, randomblob(32)), (3, x'01', x'02'), (4, NULL, x'');
        """,
        """
        UPDATE subjects SET key = randomblob(32) WHERE pid = 'a';
        UPDATE receipts SET score = -1e308 WHERE pid = 'a';
        DELETE FROM audit WHERE seq = 3;
        """,
        """
        DELETE FROM identities WHERE pid = 'a';
        DELETE FROM subjects WHERE pid = 'a';
        INSERT INTO audit (at, detail, hash) VALUES (5, 'erase', randomblob(32));
        """,
    ]

    func test_transactionsCapturedOnALeader_appliedInOrderOnAFollower_leaveIdenticalRows() throws {
        let leader = try makeDatabase("leader.sqlite")
        let follower = try makeDatabase("follower.sqlite")
        for sql in Self.transactions {
            let (_, changeset) = try leader.capturingChanges { try leader.executeScript(sql) }
            XCTAssertFalse(changeset.isEmpty)
            try follower.apply(changeset)
            XCTAssertEqual(try follower.contentDump(), try leader.contentDump())
        }
        XCTAssertEqual(try leader.fetchOne("SELECT count(*) FROM audit") { $0.int(0) }, 4, "the transactions ran")
    }

    func test_writerBatches_withAFailedRequest_carryOnlyWhatCommitted() async throws {
        struct Deliberate: Error {}
        let changesets = Locked<[Changeset]>([])
        var settings = Writer.Settings()
        settings.beforeCommit = { changeset, _ in changesets.withLock { $0.append(changeset) } }
        let store = try Store(path: directory.file("leader.sqlite"), migrator: Migrator([Migration(version: 1, name: "test", sql: Self.schema)]),
                              now: 0, settings: settings)
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    try? await store.write { database in
                        try database.execute("INSERT INTO subjects VALUES (?, randomblob(16), ?)", ["s\(index)", index])
                        try database.execute("INSERT INTO audit (at, detail, hash) VALUES (?, 'w', randomblob(8))", [index])
                        if index % 7 == 3 { throw Deliberate() }
                    }
                }
            }
        }
        store.close()
        let leader = try Database(path: directory.file("leader.sqlite"))
        let follower = try makeDatabase("follower.sqlite")
        try follower.executeScript("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT")
        try follower.execute("INSERT INTO schema_migrations VALUES (1, 'test', 0)")
        for changeset in changesets.withLock({ $0 }) { try follower.apply(changeset) }
        XCTAssertEqual(try follower.contentDump(), try leader.contentDump())
        XCTAssertEqual(try follower.fetchOne("SELECT count(*) FROM subjects") { $0.int(0) }, 200 - 29)
    }

    /// A batch whose changeset cannot be handed over (the log refused it)
    /// does not commit: its callers fail with the hook's error.
    func test_writerBatch_whoseChangesetIsRefused_commitsNothing() async throws {
        struct Refused: Error {}
        var settings = Writer.Settings()
        settings.beforeCommit = { changeset, _ in if !changeset.isEmpty { throw Refused() } }
        let store = try Store(path: directory.file("leader.sqlite"), migrator: Migrator([Migration(version: 1, name: "test", sql: Self.schema)]),
                              now: 0, settings: settings)
        await XCTAssertThrowsErrorAsync(try await store.write { try $0.execute("INSERT INTO subjects VALUES ('a', x'01', 1)") }) {
            XCTAssertTrue($0 is Refused, "\($0)")
        }
        try await store.write { _ in }
        XCTAssertEqual(try store.read { try $0.fetchOne("SELECT count(*) FROM subjects") { $0.int(0) } }, 0)
        store.close()
    }

    func test_apply_whenTheFollowerDiverged_throwsATypedConflictAndChangesNothing() throws {
        let leader = try makeDatabase("leader.sqlite")
        let follower = try makeDatabase("follower.sqlite")
        let insert = try leader.capturingChanges {
            try leader.execute("INSERT INTO subjects VALUES ('a', x'01', 1)")
            try leader.execute("INSERT INTO audit VALUES (1, 1, 'x', x'aa')")
        }.changeset
        try follower.apply(insert)
        let update = try leader.capturingChanges { try leader.execute("UPDATE subjects SET key = x'02' WHERE pid = 'a'") }.changeset
        let delete = try leader.capturingChanges { try leader.execute("DELETE FROM audit WHERE seq = 1") }.changeset
        try follower.execute("UPDATE subjects SET key = x'ff' WHERE pid = 'a'")
        try follower.execute("DELETE FROM audit")
        let before = try follower.contentDump()

        XCTAssertThrowsError(try follower.apply(insert)) { XCTAssertEqual($0 as? ChangesetError, .conflict(table: "subjects", kind: .conflict)) }
        XCTAssertThrowsError(try follower.apply(update)) { XCTAssertEqual($0 as? ChangesetError, .conflict(table: "subjects", kind: .data)) }
        XCTAssertThrowsError(try follower.apply(delete)) { XCTAssertEqual($0 as? ChangesetError, .conflict(table: "audit", kind: .notFound)) }
        XCTAssertEqual(try follower.contentDump(), before)
    }

    /// Why the log carries changesets, not patchsets: a patchset's update
    /// overwrites whatever the follower holds; a changeset's checks it first.
    func test_aStaleRow_isCaughtByAChangeset_butOverwrittenByAPatchset() throws {
        let leader = try makeDatabase("leader.sqlite")
        try leader.execute("INSERT INTO subjects VALUES ('a', x'01', 1)")
        let capture = try leader.captureChanges()
        try leader.transaction { try leader.execute("UPDATE subjects SET key = x'02' WHERE pid = 'a'") }
        let changeset = try capture.changeset()
        let patchset = try capture.patchset()
        XCTAssertLessThan(patchset.bytes.count, changeset.bytes.count)

        let follower = try makeDatabase("follower.sqlite")
        try follower.execute("INSERT INTO subjects VALUES ('a', x'ff', 1)")
        XCTAssertThrowsError(try follower.apply(changeset)) { XCTAssertEqual($0 as? ChangesetError, .conflict(table: "subjects", kind: .data)) }
        try follower.apply(patchset)
        XCTAssertEqual(try follower.fetchOne("SELECT hex(key) FROM subjects") { $0.text(0) }, "02")
    }

    func test_apply_recordsTheAppliedIndexInItsTransaction_bothOrNeither() throws {
        let leader = try makeDatabase("leader.sqlite")
        let follower = try makeDatabase("follower.sqlite")
        try follower.executeScript("CREATE TABLE applied (id INTEGER PRIMARY KEY CHECK (id = 1), log_index INTEGER NOT NULL) STRICT")
        let insert = try leader.capturingChanges { try leader.execute("INSERT INTO subjects VALUES ('a', x'01', 1)") }.changeset
        func applyEntry(_ changeset: Changeset, index: Int) throws {
            try follower.apply(changeset) { try follower.execute("INSERT OR REPLACE INTO applied VALUES (1, ?)", [index]) }
        }
        try applyEntry(insert, index: 1)
        XCTAssertThrowsError(try applyEntry(insert, index: 2))
        XCTAssertEqual(try follower.fetchOne("SELECT log_index FROM applied") { $0.int(0) }, 1)
        XCTAssertEqual(try follower.fetchOne("SELECT count(*) FROM subjects") { $0.int(0) }, 1)
        XCTAssertEqual(try follower.fetchOne("PRAGMA foreign_keys") { $0.int(0) }, 1, "enforced again after applying")
    }

    func test_apply_aChangesetOfAnotherSchema_isRefusedAndChangesNothing() throws {
        let other = try makeDatabase("other.sqlite", schema: """
            CREATE TABLE subjects (pid TEXT PRIMARY KEY, key BLOB NOT NULL, created_at INTEGER NOT NULL, extra TEXT) STRICT;
            CREATE TABLE strangers (id INTEGER PRIMARY KEY);
            CREATE TABLE identities (pid TEXT NOT NULL, kind TEXT PRIMARY KEY, sealed BLOB NOT NULL) STRICT;
            """)
        let wider = try other.capturingChanges { try other.execute("INSERT INTO subjects VALUES ('a', x'01', 1, NULL)") }.changeset
        let unknown = try other.capturingChanges { try other.execute("INSERT INTO strangers VALUES (1)") }.changeset
        let otherKey = try other.capturingChanges { try other.execute("INSERT INTO identities VALUES ('a', 'email', x'01')") }.changeset
        let follower = try makeDatabase("follower.sqlite")
        try follower.execute("INSERT INTO audit VALUES (1, 1, NULL, x'')")
        let before = try follower.contentDump()

        XCTAssertThrowsError(try follower.apply(wider)) { XCTAssertEqual($0 as? ChangesetError, .incompatibleTable("subjects")) }
        XCTAssertThrowsError(try follower.apply(unknown)) { XCTAssertEqual($0 as? ChangesetError, .unknownTable) }
        XCTAssertThrowsError(try follower.apply(otherKey)) { XCTAssertEqual($0 as? ChangesetError, .incompatibleTable("identities")) }
        XCTAssertEqual(try follower.contentDump(), before)
    }

    func test_capture_refusesTablesWithoutAPrimaryKey_whichASessionWouldSkip() throws {
        let database = try makeDatabase("d.sqlite", schema: Self.schema + "CREATE TABLE charges (pid TEXT NOT NULL, epsilon REAL NOT NULL) STRICT;")
        XCTAssertEqual(try database.tablesWithoutPrimaryKey(), ["charges"])
        XCTAssertThrowsError(try database.captureChanges()) { XCTAssertEqual($0 as? ChangesetError, .tablesWithoutPrimaryKey(["charges"])) }
        XCTAssertThrowsError(try database.captureChanges(in: ["subjects", "charges"]))
        XCTAssertNoThrow(try database.captureChanges(in: ["subjects", "audit"]))
    }

    /// A changeset lists its rows table by table: in a batch where one
    /// request writes a parent table and a later one deletes a child row and
    /// then its parent, the parent's delete comes first. The follower must
    /// not run the ON DELETE CASCADE again (it would delete the child the
    /// changeset deletes next: a conflict), so foreign keys are off while it
    /// applies.
    func test_aParentDeletedBeforeItsChildrenInTheChangeset_appliesWithoutCascadingAgain() throws {
        let leader = try makeDatabase("leader.sqlite")
        let follower = try makeDatabase("follower.sqlite")
        let setup = try leader.capturingChanges {
            try leader.executeScript("INSERT INTO subjects VALUES ('a', x'01', 1); INSERT INTO identities VALUES ('a', 'e', x'')")
        }.changeset
        try follower.apply(setup)
        let batch = try leader.capturingChanges {
            try leader.execute("INSERT INTO subjects VALUES ('b', x'02', 2)")
            try leader.execute("DELETE FROM identities WHERE pid = 'a'")
            try leader.execute("DELETE FROM subjects WHERE pid = 'a'")
        }.changeset
        try follower.apply(batch)
        XCTAssertEqual(try follower.contentDump(), try leader.contentDump())
        let cascade = try leader.capturingChanges {
            try leader.execute("INSERT INTO identities VALUES ('b', 'e', x'')")
            try leader.execute("DELETE FROM subjects WHERE pid = 'b'")
        }.changeset
        try follower.apply(cascade)
        XCTAssertEqual(try follower.contentDump(), try leader.contentDump())
    }

    /// Every truncation and seeded bit flips, byte changes and splices of
    /// valid changesets: never a trap, a typed refusal that changes nothing
    /// or a consistent result (the fuzz target's check, ChangesetFuzzing).
    func test_apply_truncatedAndMutatedChangesets_neverTrapAndRefusalsChangeNothing() throws {
        let seeds = try ChangesetFuzzing.seeds()
        var random = SeededRandom(seed: 14)
        for seed in seeds {
            for length in 0..<seed.bytes.count {
                Array(seed.bytes.prefix(length)).withUnsafeBytes { ChangesetFuzzing.check($0) }
            }
            for _ in 0..<150 {
                var bytes = seed.bytes
                for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &random)
                    switch Int.random(in: 0..<3, using: &random) {
                    case 0: bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &random)
                    case 1: bytes[at] = UInt8.random(in: 0...255, using: &random)
                    default: bytes.insert(contentsOf: seeds.randomElement(using: &random)!.bytes.prefix(24), at: at)
                    }
                }
                bytes.withUnsafeBytes { ChangesetFuzzing.check($0) }
            }
        }
        for _ in 0..<300 {
            let bytes = (0..<Int.random(in: 0..<64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            bytes.withUnsafeBytes { ChangesetFuzzing.check($0) }
        }
    }

    /// The fuzzer's seed corpus passes its check in the ordinary test run too.
    func test_fuzzSeedCorpus_passesTheApplyCheck() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fuzz/corpus/changeset").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path)
        XCTAssertGreaterThanOrEqual(files.count, 10)
        for file in files {
            let bytes = Array(try Data(contentsOf: corpus.appendingPathComponent(file)))
            bytes.withUnsafeBytes { ChangesetFuzzing.check($0) }
        }
    }

    /// The corpus's seeds apply or are refused as their names say.
    func test_fuzzSeeds_validOnesApply_theOthersAreRefused() throws {
        for seed in try ChangesetFuzzing.seeds() {
            let shouldBeRefused = seed.name.hasPrefix("conflict") || seed.name.hasPrefix("other-schema")
            XCTAssertEqual(ChangesetFuzzing.apply(seed.bytes), !shouldBeRefused, seed.name)
        }
    }
}
