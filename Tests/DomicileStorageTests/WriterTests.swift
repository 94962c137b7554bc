import DomicileModel
@testable import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

final class WriterTests: XCTestCase {
    let directory = TemporaryDirectory()
    static let schema = Migrator([Migration(version: 1, name: "rows", sql: """
        CREATE TABLE rows (id INTEGER PRIMARY KEY, value TEXT NOT NULL) STRICT;
        CREATE TABLE audit (id INTEGER PRIMARY KEY, row_id INTEGER NOT NULL) STRICT;
        """)])

    struct Deliberate: Error {}

    func makeStore(_ name: String = "w.sqlite", settings: Writer.Settings = Writer.Settings()) throws -> Store {
        try Store(path: directory.file(name), migrator: Self.schema, now: 0, settings: settings)
    }

    func test_groupCommit_hundredsOfConcurrentWritersOneFailing_allOthersCommitted() async throws {
        let store = try makeStore()
        let writers = 400
        let failing = 123
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for writer in 0..<writers {
                group.addTask {
                    do {
                        try await store.write { database in
                            try database.execute("INSERT INTO rows (id, value) VALUES (?, ?)", [writer, "v\(writer)"])
                            try database.execute("INSERT INTO audit (row_id) VALUES (?)", [writer])
                            if writer == failing { throw Deliberate() }
                        }
                        return (writer, true)
                    } catch {
                        XCTAssertTrue(error is Deliberate, "only the deliberate failure: \(error)")
                        return (writer, false)
                    }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        XCTAssertEqual(results.filter { !$0.value }.map(\.key), [failing])
        let statistics = store.writer.currentStatistics
        XCTAssertEqual(statistics.committedRequests, writers - 1)
        XCTAssertEqual(statistics.failedRequests, 1)
        XCTAssertLessThan(statistics.commits, writers - 1, "concurrent writes shared commits")
        store.close()

        let database = try Database(path: directory.file("w.sqlite"))
        XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM rows") { $0.int(0) }, writers - 1)
        XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM audit") { $0.int(0) }, writers - 1,
                       "the failed request's earlier statements were rolled back with it")
        XCTAssertNil(try database.fetchOne("SELECT 1 FROM rows WHERE id = ?", [failing]) { $0.int(0) })
    }

    func test_groupCommit_constraintViolationFailsOnlyItsRequest() async throws {
        let store = try makeStore()
        try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (1, 'first')") }
        let duplicate = Task { try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (1, 'again')") } }
        let other = Task { try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (2, 'second')") } }
        await XCTAssertThrowsErrorAsync(try await duplicate.value) { XCTAssertTrue(($0 as? StorageError)?.isUniqueViolation ?? false) }
        try await other.value
        XCTAssertEqual(try store.read { try $0.fetchAll("SELECT value FROM rows ORDER BY id") { $0.text(0) } }, ["first", "second"])
    }

    /// A request that rewrote most of the file before failing is undone from
    /// the statement journal, beside a request of the same batch that
    /// commits; that journal is kept in memory, never in a temporary file.
    func test_failedRequestRewritingManyPages_undoneFromAJournalInMemory() async throws {
        let store = try makeStore()
        defer { store.close() }
        let rows = 4_000
        let value = String(repeating: "v", count: 400)
        try await store.write { database in
            for id in 0..<rows { try database.execute("INSERT INTO rows (id, value) VALUES (?, ?)", [id, value]) }
        }
        // Hold the writer thread so the next two writes are taken as one batch.
        let (release, holder) = await store.writer.hold()
        let journalFiles = Locked<[String]?>(nil)
        let rewriting = Task {
            try await store.write { database -> Void in
                try database.execute("UPDATE rows SET value = upper(value)")
                let open = WriterTests.temporaryFilesOpen()
                journalFiles.withLock { $0 = open }
                throw Deliberate()
            }
        }
        while store.writer.queuedRequests < 1 { try await Task.sleep(nanoseconds: 1_000_000) }
        let inserting = Task { try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (?, 'new')", [rows]) } }
        while store.writer.queuedRequests < 2 { try await Task.sleep(nanoseconds: 1_000_000) }
        release.signal()
        try await holder.value

        await XCTAssertThrowsErrorAsync(try await rewriting.value) { XCTAssertTrue($0 is Deliberate, "\($0)") }
        try await inserting.value
        XCTAssertEqual(store.writer.currentStatistics.commits, 2, "one commit for the rows, one for the batch of two requests")
        XCTAssertEqual(try store.read { try $0.fetchOne("SELECT count(*) FROM rows WHERE value = ?", [value]) { $0.int(0) } }, rows,
                       "every page the failed request changed was restored")
        XCTAssertEqual(try store.read { try $0.fetchOne("SELECT value FROM rows WHERE id = ?", [rows]) { $0.text(0) } }, "new")
        XCTAssertEqual(journalFiles.value, [], "the statement journal of \(rows) rewritten rows stayed in memory")
    }

    /// The unlinked temporary files this process holds open (SQLite's
    /// statement journals are created and unlinked at once).
    static func temporaryFilesOpen() -> [String] {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
            .filter { $0.contains("etilqs_") }
    }

    func test_acknowledgedWrite_isVisibleToAnotherConnectionAtOnce() async throws {
        let store = try makeStore()
        let observer = try Database(path: directory.file("w.sqlite"))
        for id in 0..<50 {
            try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (?, 'x')", [id]) }
            XCTAssertEqual(try observer.fetchOne("SELECT count(*) FROM rows") { $0.int(0) }, id + 1)
        }
    }

    func test_write_returnsTheBodysValue() async throws {
        let store = try makeStore()
        let rowID = try await store.write { database -> Int64 in
            try database.execute("INSERT INTO rows (value) VALUES ('auto')")
            return database.lastInsertRowID
        }
        XCTAssertEqual(rowID, 1)
    }

    func test_closedWriter_refusesWrites() async throws {
        let store = try makeStore()
        store.close()
        await XCTAssertThrowsErrorAsync(try await store.write { try $0.execute("INSERT INTO rows (value) VALUES ('late')") }) {
            guard case StorageFailure.writerClosed = $0 else { return XCTFail("\($0)") }
        }
    }

    func test_oneTransactionPerWrite_stillCommitsEverything() async throws {
        let store = try makeStore("single.sqlite", settings: .oneTransactionPerWrite)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in 0..<40 {
                group.addTask { try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (?, 'x')", [id]) } }
            }
            try await group.waitForAll()
        }
        let statistics = store.writer.currentStatistics
        XCTAssertEqual(statistics.commits, 40)
        XCTAssertEqual(statistics.batchSizeCounts[0], 40, "every batch had one request")
    }

    func test_readers_runConcurrentlyWithTheWriter() async throws {
        let store = try makeStore()
        let writes = Task {
            for id in 0..<200 { try await store.write { try $0.execute("INSERT INTO rows (id, value) VALUES (?, 'x')", [id]) } }
        }
        var last = 0
        while true {
            let count = try store.snapshot { database -> Int in
                let rows = try database.fetchOne("SELECT count(*) FROM rows") { $0.int(0) } ?? 0
                let maximum = try database.fetchOne("SELECT coalesce(max(id) + 1, 0) FROM rows") { $0.int(0) } ?? 0
                XCTAssertEqual(rows, maximum, "a snapshot sees whole commits")
                return rows
            }
            XCTAssertGreaterThanOrEqual(count, last, "reads never go back in time")
            last = count
            if count == 200 { break }
            try await Task.sleep(nanoseconds: 1_000_000)
        }
        try await writes.value
    }

    func test_readerConnections_refuseWrites() throws {
        let store = try makeStore()
        XCTAssertThrowsError(try store.read { try $0.execute("INSERT INTO rows (value) VALUES ('sneaky')") })
    }
}

final class CheckpointerTests: XCTestCase {
    func test_store_checkpointsInTheBackground_notInTheWriter() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("c.sqlite")
        let store = try Store(path: path, migrator: WriterTests.schema, now: 0)
        let writerSetting = try await store.write { try $0.fetchOne("PRAGMA wal_autocheckpoint") { $0.int(0) } }
        XCTAssertEqual(writerSetting, 0, "the writer never checkpoints inside a commit")
        let before = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        let payload = String(repeating: "x", count: 8_000)
        for batch in 0..<100 {
            try await store.write { database in
                for index in 0..<10 { try database.execute("INSERT INTO rows (id, value) VALUES (?, ?)", [batch * 10 + index, payload]) }
            }
        }
        // About 8 MB went to the WAL; the checkpointer copies it within a few intervals.
        var after = before
        for _ in 0..<50 where after < before + 4_000_000 {
            try await Task.sleep(nanoseconds: 100_000_000)
            after = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        }
        XCTAssertGreaterThan(after, before + 4_000_000, "pages reached the database file")
        store.close()
    }

    /// Writes that never pause (eight clients committing back to back, as a
    /// bulk load does) still let the WAL start over once it is past the
    /// ceiling: the RESTART runs on the writer, between two transactions.
    /// Measured in frames (what the WAL holds since it last started over):
    /// without it the WAL only grew, to gigabytes in a 1M-vector load.
    func test_sustainedWrites_theWALStartsOverPastTheCeiling() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("sustained.sqlite")
        var options = Database.Options()
        options.autoCheckpointPages = 0
        let writer = try Writer(path: path, options: options) { try WriterTests.schema.migrate($0, appliedAt: 0) }
        let settings = Checkpointer.Settings(intervalMilliseconds: 5, walBytesThreshold: 256 * 1_024, walBytesCeiling: 1_024 * 1_024)
        let checkpointer = try Checkpointer(path: path, options: options, settings: settings, writer: writer)
        let payload = String(repeating: "y", count: 4_000)
        let next = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    while true {
                        let row = next.withLock { value -> Int in defer { value += 1 }; return value }
                        guard row < 8_000 else { return }
                        try await writer.write { try $0.execute("INSERT INTO rows (id, value) VALUES (?, ?)", [row, payload]) }
                    }
                }
            }
            try await group.waitForAll()
        }
        checkpointer.stop()
        // About 32 MB went through the WAL: 8 000 frames and more. What it holds now is what came after its last start.
        let frames = try await writer.outsideTransaction { database in
            try database.fetchOne("PRAGMA wal_checkpoint(PASSIVE)") { $0.int(1) } ?? -1
        }
        XCTAssertGreaterThanOrEqual(frames, 0)
        XCTAssertLessThan(frames, 4_000, "the WAL started over during the load")
        let count = try await writer.write { try $0.fetchOne("SELECT count(*) FROM rows") { $0.int(0) } }
        XCTAssertEqual(count, 8_000)
        writer.close()
    }

    /// The region log's file is written by one thread persisting back to
    /// back (a leader under a bulk load). Its checkpointer's checkpoints,
    /// on their own thread, keep the WAL bounded: it starts over during the
    /// persists (after a RESTART, or a passive checkpoint that copied every
    /// frame), without a RESTART on the persisting thread.
    func test_raftLog_sustainedPersists_theWALStartsOverPastTheCeiling() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("raft.sqlite")
        let storage = try RaftStorage(path: path, now: 0, limits: RaftStorage.Limits(), options: Database.Options(),
                                      checkpoints: Checkpointer.Settings(intervalMilliseconds: 5, walBytesThreshold: 256 * 1_024,
                                                                         walBytesCeiling: 1_024 * 1_024))
        let payload = [UInt8](repeating: 9, count: 4_000)
        for index in UInt64(1)...8_000 {
            try storage.persist(hardState: RaftHardState(term: 1, vote: "eu-1", commit: index - 1),
                                entries: [RaftStoredEntry(index: index, term: 1, payload: payload)])
        }
        // About 32 MB went through the WAL. What it holds now is what came after its last start.
        XCTAssertLessThan(try walFrames(path), 4_000, "the WAL started over during the persists")
        XCTAssertEqual(storage.lastIndex, 8_000)
    }

    /// Frames in the WAL since it last started over (from another connection).
    private func walFrames(_ path: String) throws -> Int {
        try Database(path: path).fetchOne("PRAGMA wal_checkpoint(PASSIVE)") { $0.int(1) } ?? -1
    }
}
