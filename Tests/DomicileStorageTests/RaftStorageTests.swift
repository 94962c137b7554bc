import DomicileStorage
import DomicileTestSupport
import XCTest

/// The region log's storage on a real SQLite file, reopened where it matters.
final class RaftStorageTests: XCTestCase {
    let directory = TemporaryDirectory("domicile-raftlog")
    var path: String { directory.file(RaftStorage.fileName) }

    func open(_ path: String? = nil) throws -> RaftStorage {
        try RaftStorage(path: path ?? self.path, now: 1_700_000_000)
    }

    func entries(_ indexes: ClosedRange<UInt64>, term: UInt64, size: Int = 8) -> [RaftStoredEntry] {
        indexes.map { RaftStoredEntry(index: $0, term: term, payload: [UInt8](repeating: UInt8(truncatingIfNeeded: $0 &+ term), count: size)) }
    }

    func test_newLog_isEmptyAtIndexZero() throws {
        let storage = try open()
        XCTAssertEqual(storage.hardState, RaftHardState())
        XCTAssertEqual(storage.snapshot, .initial)
        XCTAssertEqual(storage.firstIndex, 1)
        XCTAssertEqual(storage.lastIndex, 0)
        XCTAssertEqual(try storage.term(at: 0), 0)
        XCTAssertThrowsError(try storage.term(at: 1)) { XCTAssertEqual($0 as? RaftStorageFailure, .unavailable(index: 1, lastIndex: 0)) }
    }

    func test_hardStateAndEntries_roundTripThroughReopening() throws {
        do {
            let storage = try open()
            try storage.persist(hardState: RaftHardState(term: 2, vote: "eu-2", commit: 0), entries: entries(1...3, term: 2))
            try storage.persist(hardState: RaftHardState(term: 2, vote: "eu-2", commit: 3))
        }
        let reopened = try open()
        XCTAssertEqual(reopened.hardState, RaftHardState(term: 2, vote: "eu-2", commit: 3))
        XCTAssertEqual(reopened.lastIndex, 3)
        XCTAssertEqual(reopened.lastTerm, 2)
        XCTAssertEqual(try reopened.entries(from: 1, upTo: 4, byteCountMax: .max), entries(1...3, term: 2))
        // A vote of nil and a term of 2^63 - 1 are stored as they are.
        try reopened.persist(hardState: RaftHardState(term: UInt64(Int64.max), vote: nil, commit: 3))
        XCTAssertEqual(try open().hardState, RaftHardState(term: UInt64(Int64.max), vote: nil, commit: 3))
    }

    func test_appendingAtAnIndex_deletesTheConflictingSuffixFirst() throws {
        let storage = try open()
        try storage.persist(hardState: RaftHardState(term: 1, vote: "eu-1", commit: 2), entries: entries(1...5, term: 1))
        try storage.persist(hardState: RaftHardState(term: 3, vote: nil, commit: 2), entries: entries(4...4, term: 3, size: 20))
        let reopened = try open()
        XCTAssertEqual(reopened.lastIndex, 4)
        XCTAssertEqual(reopened.lastTerm, 3)
        XCTAssertEqual(try reopened.entries(from: 1, upTo: 5, byteCountMax: .max), entries(1...3, term: 1) + entries(4...4, term: 3, size: 20))
        XCTAssertThrowsError(try reopened.term(at: 5)) { XCTAssertEqual($0 as? RaftStorageFailure, .unavailable(index: 5, lastIndex: 4)) }
    }

    func test_appendsThatBreakTheLog_areRefused_andWriteNothing() throws {
        let storage = try open()
        try storage.persist(hardState: RaftHardState(term: 2, vote: "eu-1", commit: 2), entries: entries(1...3, term: 2))
        let refusals: [(RaftStorageFailure, () throws -> Void)] = [
            (.gap(lastIndex: 3, firstNew: 5), { try storage.persist(entries: self.entries(5...5, term: 2)) }),
            (.entriesNotConsecutive(after: 4), { try storage.persist(entries: self.entries(4...4, term: 2) + self.entries(6...6, term: 2)) }),
            (.termDecreases(index: 4), { try storage.persist(entries: self.entries(4...4, term: 1)) }),
            (.termPastHardState(index: 4), { try storage.persist(entries: self.entries(4...4, term: 3)) }),
            (.rewritesCommitted(index: 2), { try storage.persist(hardState: RaftHardState(term: 3, vote: nil, commit: 2),
                                                                 entries: self.entries(2...2, term: 3)) }),
            (.hardStateRegresses, { try storage.persist(hardState: RaftHardState(term: 1, vote: nil, commit: 2)) }),
            (.hardStateRegresses, { try storage.persist(hardState: RaftHardState(term: 2, vote: "eu-3", commit: 2)) }),
            (.hardStateRegresses, { try storage.persist(hardState: RaftHardState(term: 2, vote: "eu-1", commit: 1)) }),
            (.commitOutsideLog(commit: 4, firstIndex: 1, lastIndex: 3), {
                try storage.persist(hardState: RaftHardState(term: 2, vote: "eu-1", commit: 4)) }),
            (.valueOutOfRange(UInt64(Int64.max) + 1), { try storage.persist(hardState: RaftHardState(term: UInt64(Int64.max) + 1)) }),
            (.payloadTooLarge(index: 4, bytes: 17, limit: 16), {
                var limits = RaftStorage.Limits()
                limits.payloadBytesMax = 16
                try RaftStorage(path: self.path, now: 0, limits: limits).persist(entries: self.entries(4...4, term: 2, size: 17)) }),
        ]
        for (expected, attempt) in refusals {
            XCTAssertThrowsError(try attempt()) { XCTAssertEqual($0 as? RaftStorageFailure, expected) }
        }
        let reopened = try open()
        XCTAssertEqual(reopened.hardState, RaftHardState(term: 2, vote: "eu-1", commit: 2))
        XCTAssertEqual(try reopened.entries(from: 1, upTo: 4, byteCountMax: .max), entries(1...3, term: 2))
        // Resending committed entries unchanged is harmless.
        try reopened.persist(entries: entries(2...4, term: 2))
        XCTAssertEqual(reopened.lastIndex, 4)
    }

    func test_aPersistThatFailsHalfway_leavesNothingOfIt() throws {
        let storage = try open()
        try storage.persist(hardState: RaftHardState(term: 1, vote: "eu-1", commit: 1), entries: entries(1...3, term: 1))
        // The hard state is written last; make SQLite fail there, after the entries went in.
        do {
            let database = try Database(path: path)
            try database.executeScript("""
                CREATE TRIGGER refuse_term_9 BEFORE UPDATE ON raft_hard_state WHEN NEW.term = 9
                BEGIN SELECT RAISE(ABORT, 'injected failure'); END
                """)
        }
        XCTAssertThrowsError(try storage.persist(hardState: RaftHardState(term: 9, vote: nil, commit: 1), entries: entries(2...6, term: 9))) {
            XCTAssertTrue("\($0)".contains("injected failure"), "\($0)")
        }
        XCTAssertEqual(storage.lastIndex, 3)
        XCTAssertEqual(storage.hardState, RaftHardState(term: 1, vote: "eu-1", commit: 1))
        let reopened = try open()
        XCTAssertEqual(reopened.hardState, RaftHardState(term: 1, vote: "eu-1", commit: 1))
        XCTAssertEqual(try reopened.entries(from: 1, upTo: 4, byteCountMax: .max), entries(1...3, term: 1))
    }

    func test_compaction_dropsEntriesThroughTheIndex_andKeepsTheBoundaryTerm() throws {
        do {
            let storage = try open()
            try storage.persist(hardState: RaftHardState(term: 1, vote: nil, commit: 0), entries: entries(1...4, term: 1))
            try storage.persist(hardState: RaftHardState(term: 2, vote: nil, commit: 6), entries: entries(5...8, term: 2))
            XCTAssertThrowsError(try storage.compact(through: 7, configuration: [9])) {
                XCTAssertEqual($0 as? RaftStorageFailure, .compactionBeyondCommit(index: 7, commit: 6))
            }
            XCTAssertEqual(try storage.compact(through: 4, configuration: [1, 2, 3]), RaftSnapshotMetadata(index: 4, term: 1, configuration: [1, 2, 3]))
        }
        let reopened = try open()
        XCTAssertEqual(reopened.snapshot, RaftSnapshotMetadata(index: 4, term: 1, configuration: [1, 2, 3]))
        XCTAssertEqual(reopened.firstIndex, 5)
        XCTAssertEqual(reopened.lastIndex, 8)
        XCTAssertEqual(try reopened.term(at: 4), 1, "the compacted boundary keeps its term")
        XCTAssertEqual(try reopened.term(at: 5), 2)
        XCTAssertThrowsError(try reopened.term(at: 3)) { XCTAssertEqual($0 as? RaftStorageFailure, .compacted(index: 3, firstIndex: 5)) }
        XCTAssertThrowsError(try reopened.entries(from: 4, upTo: 6, byteCountMax: .max)) {
            XCTAssertEqual($0 as? RaftStorageFailure, .compacted(index: 4, firstIndex: 5))
        }
        XCTAssertEqual(try reopened.entries(from: 5, upTo: 9, byteCountMax: .max), entries(5...8, term: 2))
        // An append right after the boundary checks its term against the boundary's; entries the snapshot covers are skipped.
        try reopened.persist(entries: entries(3...4, term: 1) + entries(5...9, term: 2))
        XCTAssertEqual(reopened.lastIndex, 9)
        XCTAssertEqual(try reopened.compact(through: 2, configuration: []), reopened.snapshot, "compacting before the start does nothing")
    }

    func test_persistingASnapshot_replacesTheWholeLog() throws {
        let storage = try open()
        try storage.persist(hardState: RaftHardState(term: 1, vote: nil, commit: 1), entries: entries(1...5, term: 1))
        let snapshot = RaftSnapshotMetadata(index: 10, term: 3, configuration: [7])
        try storage.persist(hardState: RaftHardState(term: 3, vote: nil, commit: 10), entries: entries(11...12, term: 3), snapshot: snapshot)
        let reopened = try open()
        XCTAssertEqual(reopened.snapshot, snapshot)
        XCTAssertEqual(reopened.firstIndex, 11)
        XCTAssertEqual(reopened.lastIndex, 12)
        XCTAssertEqual(try reopened.term(at: 10), 3)
        XCTAssertEqual(try reopened.entries(from: 11, upTo: 13, byteCountMax: .max), entries(11...12, term: 3))
        XCTAssertThrowsError(try reopened.persist(snapshot: RaftSnapshotMetadata(index: 9, term: 3, configuration: []))) {
            XCTAssertEqual($0 as? RaftStorageFailure, .snapshotOutOfDate(index: 9, current: 10))
        }
        XCTAssertThrowsError(try reopened.persist(snapshot: RaftSnapshotMetadata(index: 20, term: 3, configuration: []))) {
            XCTAssertEqual($0 as? RaftStorageFailure, .commitOutsideLog(commit: 10, firstIndex: 21, lastIndex: 20),
                           "a snapshot past the commit index comes with the hard state that commits it")
        }
    }

    func test_rangeReads_stopAtTheByteBound_butReturnAtLeastOneEntry() throws {
        let storage = try open()
        try storage.persist(hardState: RaftHardState(term: 1, vote: nil, commit: 0), entries: entries(1...10, term: 1, size: 100))
        XCTAssertEqual(try storage.entries(from: 1, upTo: 11, byteCountMax: 350).map(\.index), [1, 2, 3])
        XCTAssertEqual(try storage.entries(from: 1, upTo: 11, byteCountMax: 300).map(\.index), [1, 2, 3])
        XCTAssertEqual(try storage.entries(from: 4, upTo: 11, byteCountMax: 10).map(\.index), [4], "one entry even when it alone is too large")
        XCTAssertEqual(try storage.entries(from: 8, upTo: 11, byteCountMax: .max).map(\.index), [8, 9, 10])
        XCTAssertEqual(try storage.entries(from: 5, upTo: 5, byteCountMax: .max), [])
        XCTAssertThrowsError(try storage.entries(from: 9, upTo: 12, byteCountMax: .max)) {
            XCTAssertEqual($0 as? RaftStorageFailure, .unavailable(index: 11, lastIndex: 10))
        }
    }

    // MARK: Corrupt files are refused at start-up

    /// Builds a log of entries 1…6 (term 1…2, commit 4), then damages it
    /// with `sql` through a plain connection that ignores CHECK constraints,
    /// as a damaged disk or a hand edit would.
    func assertRefusedAtLoad(after sql: String, mentioning expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = directory.file("damaged-\(UUID().uuidString).sqlite")
        do {
            let storage = try open(path)
            try storage.persist(hardState: RaftHardState(term: 2, vote: "eu-1", commit: 4), entries: entries(1...3, term: 1) + entries(4...6, term: 2))
        }
        do {
            let database = try Database(path: path)
            try database.executeScript("PRAGMA ignore_check_constraints = ON; " + sql)
        }
        XCTAssertThrowsError(try open(path), file: file, line: line) { error in
            XCTAssertEqual((error as? StorageError)?.isCorrupt, true, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
        }
    }

    func test_corruptRows_areRefusedAtLoad_neverSkipped() throws {
        try assertRefusedAtLoad(after: "DELETE FROM raft_entries WHERE log_index = 3", mentioning: "a gap between entries 2 and 4")
        try assertRefusedAtLoad(after: "UPDATE raft_entries SET term = -1 WHERE log_index = 5", mentioning: "raft_entries.term")
        try assertRefusedAtLoad(after: "UPDATE raft_entries SET log_index = -2 WHERE log_index = 1", mentioning: "raft_entries.log_index")
        try assertRefusedAtLoad(after: "UPDATE raft_entries SET term = 1 WHERE log_index = 6", mentioning: "entry 6 has a lower term")
        try assertRefusedAtLoad(after: "UPDATE raft_entries SET term = 9 WHERE log_index = 6", mentioning: "entry 6 has a term past the hard state's")
        try assertRefusedAtLoad(after: "UPDATE raft_hard_state SET term = -7", mentioning: "raft_hard_state.term")
        try assertRefusedAtLoad(after: "UPDATE raft_hard_state SET commit_index = 9", mentioning: "commit index 9 is outside the log")
        try assertRefusedAtLoad(after: "DELETE FROM raft_hard_state", mentioning: "hard state row is missing")
        try assertRefusedAtLoad(after: "UPDATE raft_snapshot SET log_index = 2, term = 1", mentioning: "entry 1 is still stored")
        try assertRefusedAtLoad(after: "UPDATE raft_snapshot SET term = -1", mentioning: "raft_snapshot.term")
    }

    func test_theFileIsPrivate_andDurable() throws {
        _ = try open()
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o077, 0)
        let database = try Database(path: path)
        XCTAssertEqual(try database.fetchOne("PRAGMA journal_mode") { $0.text(0) }, "wal")
        XCTAssertEqual(try database.fetchOne("PRAGMA synchronous") { $0.int(0) }, 2)
    }
}
