import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// A follower far behind receives a snapshot: an online backup of the
/// leader's database, streamed in bounded chunks with a SHA-256, verified,
/// and installed in place of the follower's database.
final class SnapshotTests: XCTestCase {
    let directory = TemporaryDirectory("snapshot")
    static let schema = Migrator([Migration(version: 1, name: "rows", sql: """
        CREATE TABLE rows (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, payload BLOB NOT NULL) STRICT;
        """)])
    static let batchRows = 10

    func makeStore(_ name: String = "node.sqlite") throws -> Store {
        try Store(path: directory.file(name), migrator: Self.schema, now: 0)
    }

    /// Commits one batch of rows in one transaction on its own connection.
    static func commitBatch(_ database: Database) throws {
        try database.transaction {
            let batch = (try database.fetchOne("SELECT coalesce(max(batch), 0) + 1 FROM rows") { $0.int64(0) })!
            for index in 0..<batchRows {
                try database.execute("INSERT INTO rows (batch, payload) VALUES (?, ?)",
                                     [batch, [UInt8](repeating: UInt8(truncatingIfNeeded: Int(batch) &+ index), count: 2_000)])
            }
        }
    }

    func rowCount(_ path: String) throws -> Int64 {
        let database = try Database(path: path)
        return try database.fetchOne("SELECT count(*) FROM rows") { $0.int64(0) }!
    }

    /// What a backup holds must be a committed prefix: whole batches, ids 1…n without a gap, and sound pages.
    func assertCommittedPrefix(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> Int64 {
        let database = try Database(path: path)
        XCTAssertEqual(try database.fetchAll("PRAGMA integrity_check") { $0.text(0) }, ["ok"], file: file, line: line)
        let (count, maxID, batches) = try database.fetchOne("SELECT count(*), coalesce(max(id), 0), count(DISTINCT batch) FROM rows") {
            ($0.int64(0), $0.int64(1), $0.int64(2))
        }!
        XCTAssertEqual(count, maxID, "no gap", file: file, line: line)
        XCTAssertEqual(count, batches * Int64(Self.batchRows), "whole batches only", file: file, line: line)
        let partial = try database.fetchOne("SELECT count(*) FROM (SELECT batch FROM rows GROUP BY batch HAVING count(*) != ?)",
                                            [Int64(Self.batchRows)]) { $0.int64(0) }!
        XCTAssertEqual(partial, 0, file: file, line: line)
        return count
    }

    func fileBytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    // MARK: Backup

    /// Between every step of the backup another connection commits a batch:
    /// the copy is still exactly what was committed when it began, a
    /// standalone rollback-journal file of mode 0600.
    func test_backup_whileAnotherConnectionCommits_isTheStateCommittedWhenItBegan() throws {
        let store = try makeStore()
        defer { store.close() }
        let writer = try Database(path: store.path)
        for _ in 0..<50 { try Self.commitBatch(writer) }
        let committedBefore = try rowCount(store.path)

        var steps: [BackupProgress] = []
        let backupPath = directory.file("backup.sqlite")
        try store.backup(to: backupPath, pagesPerStep: 8, progress: { progress in
            steps.append(progress)
            try Self.commitBatch(writer)
        })
        XCTAssertGreaterThanOrEqual(steps.count, 10, "the copy was made in many steps, with commits between them")
        XCTAssertEqual(steps.map(\.copiedPages), steps.map(\.copiedPages).sorted())
        XCTAssertEqual(try rowCount(store.path), committedBefore + Int64(steps.count * Self.batchRows), "the writer kept writing")
        // Looked at before anything opens it (a Database turns WAL on).
        let header = try fileBytes(backupPath)
        XCTAssertEqual(Array(header[18...19]), [1, 1], "a rollback-journal file")
        for side in ["-wal", "-shm", "-journal"] { XCTAssertFalse(FileManager.default.fileExists(atPath: backupPath + side), side) }
        var info = stat()
        XCTAssertEqual(stat(backupPath, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertEqual(try assertCommittedPrefix(backupPath), committedBefore)

        XCTAssertThrowsError(try store.backup(to: backupPath), "an existing file is never overwritten")
        XCTAssertEqual(try assertCommittedPrefix(backupPath), committedBefore)
    }

    /// A writer thread commits batches as fast as it can, on its own
    /// connection, while backups are taken: each is a committed prefix.
    func test_backup_underAFreeRunningWriter_isAlwaysACommittedPrefix() throws {
        let store = try makeStore()
        defer { store.close() }
        let path = store.path
        try Self.commitBatches(20, path: path)
        let stop = Locked(false)
        let stopped = DispatchSemaphore(value: 0)
        let writer = Thread {
            let database = try! Database(path: path)
            while !stop.value { try! Self.commitBatch(database) }
            stopped.signal()
        }
        writer.start()
        var counts: [Int64] = []
        for index in 0..<4 {
            let backup = directory.file("backup-\(index).sqlite")
            try store.backup(to: backup, pagesPerStep: 4)
            counts.append(try assertCommittedPrefix(backup))
        }
        stop.withLock { $0 = true }
        stopped.wait()
        XCTAssertEqual(counts, counts.sorted())
        XCTAssertGreaterThanOrEqual(counts[0], 200)
        XCTAssertLessThanOrEqual(counts.last!, try rowCount(path))
    }

    static func commitBatches(_ count: Int, path: String) throws {
        let database = try Database(path: path)
        for _ in 0..<count { try commitBatch(database) }
    }

    // MARK: Chunks

    func makeBackup(batches: Int = 40) throws -> String {
        let store = try makeStore("source.sqlite")
        defer { store.close() }
        let writer = try Database(path: store.path)
        for _ in 0..<batches { try Self.commitBatch(writer) }
        let path = directory.file("source-backup.sqlite")
        try store.backup(to: path)
        return path
    }

    func test_roundTrip_throughReaderAndWriter_inManyChunks_equalsTheSource_andRestoresIntoAnOpenDatabase() throws {
        let source = try makeBackup()
        let reader = try SnapshotChunkReader(path: source, chunkBytesMax: 64 * 1_024)
        XCTAssertGreaterThanOrEqual(reader.chunkCount, 3)
        XCTAssertEqual(reader.digest, SHA256.hash(try fileBytes(source)))
        let receiving = TemporaryDirectory("snapshot-receiver")
        var limits = SnapshotChunkWriter.Limits()
        limits.chunkBytesMax = 64 * 1_024
        let writer = try SnapshotChunkWriter(directory: receiving.path, byteCount: reader.byteCount, limits: limits)
        var offset: UInt64 = 0
        var chunks = 0
        while let chunk = try reader.chunk(at: offset) {
            XCTAssertLessThanOrEqual(chunk.bytes.count, 64 * 1_024)
            try writer.append(chunk)
            offset += UInt64(chunk.bytes.count)
            chunks += 1
        }
        XCTAssertEqual(chunks, reader.chunkCount)
        let received = try writer.finish(expectedDigest: reader.digest)
        XCTAssertEqual(try fileBytes(received), try fileBytes(source))
        XCTAssertThrowsError(try writer.append(SnapshotChunk(offset: offset, bytes: [1]))) { XCTAssertEqual($0 as? SnapshotError, .closed) }

        // The follower restores it into its own open database (one of another history), as the region log does.
        let followerPath = receiving.file("node.sqlite")
        let follower = try Database(path: followerPath)
        try Self.schema.migrate(follower, appliedAt: 0)
        for _ in 0..<3 { try Self.commitBatch(follower) }
        try follower.restore(from: received)
        XCTAssertEqual(try follower.fetchOne("SELECT count(*) FROM rows") { $0.int64(0) }, 400)
        XCTAssertEqual(try follower.fetchAll("PRAGMA integrity_check") { $0.text(0) }, ["ok"])
    }

    func receive(_ chunks: [SnapshotChunk], byteCount: UInt64, digest: [UInt8], in receiving: TemporaryDirectory,
                 limits: SnapshotChunkWriter.Limits = SnapshotChunkWriter.Limits()) throws -> String {
        let writer = try SnapshotChunkWriter(directory: receiving.path, byteCount: byteCount, limits: limits)
        for chunk in chunks { try writer.append(chunk) }
        return try writer.finish(expectedDigest: digest)
    }

    func chunks(of reader: SnapshotChunkReader) throws -> [SnapshotChunk] {
        try stride(from: UInt64(0), to: reader.byteCount, by: reader.chunkBytesMax).map { try reader.chunk(at: $0)! }
    }

    func partialFiles(_ receiving: TemporaryDirectory) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: receiving.path).filter { $0.hasSuffix(SnapshotChunkWriter.partialSuffix) }
    }

    func test_aFlippedByte_failsTheDigest_andLeavesNoFile() throws {
        let reader = try SnapshotChunkReader(path: try makeBackup(), chunkBytesMax: 64 * 1_024)
        var sent = try chunks(of: reader)
        var bytes = sent[2].bytes
        bytes[100] ^= 0x01
        sent[2] = SnapshotChunk(offset: sent[2].offset, bytes: bytes)
        let receiving = TemporaryDirectory("snapshot-receiver")
        XCTAssertThrowsError(try receive(sent, byteCount: reader.byteCount, digest: reader.digest, in: receiving)) {
            XCTAssertEqual($0 as? SnapshotError, .digestMismatch)
        }
        XCTAssertEqual(try partialFiles(receiving), [])
    }

    func test_outOfOrder_repeated_oversized_empty_andOverflowingChunks_areRefused_andAbandonTheTransfer() throws {
        let reader = try SnapshotChunkReader(path: try makeBackup(batches: 10), chunkBytesMax: 4_096)
        let sent = try chunks(of: reader)
        let receiving = TemporaryDirectory("snapshot-receiver")
        var limits = SnapshotChunkWriter.Limits()
        limits.chunkBytesMax = 4_096
        let cases: [([SnapshotChunk], SnapshotError)] = [
            ([sent[0], sent[2]], .outOfOrder(expected: 4_096, received: 8_192)),
            ([sent[0], sent[1], sent[1]], .outOfOrder(expected: 8_192, received: 4_096)),
            ([sent[1]], .outOfOrder(expected: 0, received: 4_096)),
            ([SnapshotChunk(offset: 0, bytes: [UInt8](repeating: 0, count: 4_097))], .chunkSizeRefused(byteCount: 4_097, limit: 4_096)),
            ([sent[0], SnapshotChunk(offset: 4_096, bytes: [])], .chunkSizeRefused(byteCount: 0, limit: 4_096)),
            (sent + [SnapshotChunk(offset: reader.byteCount, bytes: [0])], .overflow(end: reader.byteCount + 1, byteCount: reader.byteCount)),
        ]
        for (chunks, expected) in cases {
            let writer = try SnapshotChunkWriter(directory: receiving.path, byteCount: reader.byteCount, limits: limits)
            var refusal: SnapshotError?
            for chunk in chunks {
                do { try writer.append(chunk) } catch { refusal = error; break }
            }
            XCTAssertEqual(refusal, expected)
            XCTAssertEqual(try partialFiles(receiving), [], "the partial file is removed")
            XCTAssertThrowsError(try writer.append(sent[0])) { XCTAssertEqual($0 as? SnapshotError, .closed) }
            XCTAssertThrowsError(try writer.finish(expectedDigest: reader.digest)) { XCTAssertEqual($0 as? SnapshotError, .closed) }
        }
        // A last chunk that overflows a smaller announced size.
        let short = try SnapshotChunkWriter(directory: receiving.path, byteCount: 5_000, limits: limits)
        try short.append(sent[0])
        XCTAssertThrowsError(try short.append(sent[1])) { XCTAssertEqual($0 as? SnapshotError, .overflow(end: 8_192, byteCount: 5_000)) }
    }

    func test_sizesBeyondTheBound_incompleteTransfers_andNonDatabases_areRefused() throws {
        let receiving = TemporaryDirectory("snapshot-receiver")
        var limits = SnapshotChunkWriter.Limits()
        limits.totalBytesMax = 1 << 20
        for size: UInt64 in [0, (1 << 20) + 1] {
            XCTAssertThrowsError(try SnapshotChunkWriter(directory: receiving.path, byteCount: size, limits: limits)) {
                XCTAssertEqual($0 as? SnapshotError, .sizeRefused(byteCount: size, limit: 1 << 20))
            }
        }
        let incomplete = try SnapshotChunkWriter(directory: receiving.path, byteCount: 10)
        try incomplete.append(SnapshotChunk(offset: 0, bytes: [1, 2, 3]))
        XCTAssertThrowsError(try incomplete.finish(expectedDigest: SHA256.hash([1, 2, 3] as [UInt8]))) {
            XCTAssertEqual($0 as? SnapshotError, .incomplete(received: 3, byteCount: 10))
        }
        // The right digest of bytes that are not a database.
        let noise = (0..<8_192).map { UInt8(truncatingIfNeeded: $0 &* 7919) }
        XCTAssertThrowsError(try receive([SnapshotChunk(offset: 0, bytes: noise)], byteCount: 8_192, digest: SHA256.hash(noise), in: receiving)) {
            guard case .notADatabase = $0 as? SnapshotError else { return XCTFail("\($0)") }
        }
        // A database with a damaged page, hashed as it is.
        var damaged = try fileBytes(try makeBackup(batches: 10))
        for index in 4_096..<4_196 { damaged[index] = 0xA5 }
        XCTAssertThrowsError(try receive([SnapshotChunk(offset: 0, bytes: damaged)], byteCount: UInt64(damaged.count),
                                         digest: SHA256.hash(damaged), in: receiving)) {
            guard case .notADatabase = $0 as? SnapshotError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try partialFiles(receiving), [])
    }

    /// Random sequences of chunks (right and wrong offsets, sizes, ends and
    /// digests) only ever end in the file or a typed refusal; nothing traps,
    /// and no partial file is left.
    func test_randomChunkSequences_neverTrap_andLeaveNoPartialFile() throws {
        let receiving = TemporaryDirectory("snapshot-fuzz")
        // A small real database (two pages), so that some sequences are whole and accepted.
        let store = try makeStore("tiny.sqlite")
        let tinyPath = directory.file("tiny-backup.sqlite")
        try store.backup(to: tinyPath)
        store.close()
        let tiny = try fileBytes(tinyPath)
        var outcomes: [String: Int] = [:]
        var random = SeededRandom(seed: 0x5EED_C4A4)
        for _ in 0..<1_500 {
            let content = random.next() % 2 == 0 ? tiny
                : (0..<Int.random(in: 1...9_000, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            var limits = SnapshotChunkWriter.Limits()
            limits.chunkBytesMax = random.next() % 4 == 0 ? Int.random(in: 1...512, using: &random) : Int.random(in: 512...4_096, using: &random)
            limits.totalBytesMax = random.next() % 8 == 0 ? UInt64.random(in: 1...12_000, using: &random) : 1 << 20
            let announced = random.next() % 8 == 0 ? UInt64.random(in: 0...12_000, using: &random) : UInt64(content.count)
            let writer: SnapshotChunkWriter
            do {
                writer = try SnapshotChunkWriter(directory: receiving.path, byteCount: announced, limits: limits)
            } catch {
                outcomes["refused at start", default: 0] += 1
                continue
            }
            var offset = 0
            var refused = false
            var steps = 0
            while !refused && UInt64(offset) < announced && steps < 80 && random.next() % 100 != 0 {
                steps += 1
                let size = random.next() % 10 == 0 ? Int.random(in: 0...5_000, using: &random)
                    : min(limits.chunkBytesMax, max(1, Int(announced) - offset))
                let start = random.next() % 10 == 0 ? Int.random(in: 0...12_000, using: &random) : offset
                let bytes = (0..<size).map { start + $0 < content.count ? content[start + $0] : 0 }
                do {
                    try writer.append(SnapshotChunk(offset: UInt64(start), bytes: bytes))
                    offset = start + size
                } catch {
                    outcomes[String("\(error)".prefix(20)), default: 0] += 1
                    refused = true
                }
            }
            let digest = random.next() % 4 == 0 ? (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) } : SHA256.hash(content)
            do {
                let path = try writer.finish(expectedDigest: digest)
                XCTAssertEqual(try fileBytes(path), content, "only the exact bytes are ever accepted")
                unlink(path)
                outcomes["accepted", default: 0] += 1
            } catch {
                outcomes["finish: " + String("\(error)".prefix(20)), default: 0] += 1
            }
        }
        XCTAssertEqual(try partialFiles(receiving), [])
        XCTAssertGreaterThan(outcomes.count, 5, "the sequences reached many outcomes: \(outcomes)")
        XCTAssertNotNil(outcomes["accepted"], "some sequences were whole: \(outcomes)")
    }

    func test_leftoversOfAnInterruptedTransfer_areRemoved_andNothingElse() throws {
        let receiving = TemporaryDirectory("snapshot-receiver")
        let writer = try SnapshotChunkWriter(directory: receiving.path, byteCount: 100)
        try writer.append(SnapshotChunk(offset: 0, bytes: [1, 2, 3]))
        _ = FileManager.default.createFile(atPath: receiving.file("node.sqlite"), contents: Data([1]))
        XCTAssertEqual(try partialFiles(receiving).count, 1)
        SnapshotChunkWriter.removeLeftovers(in: receiving.path)
        XCTAssertEqual(try partialFiles(receiving), [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: receiving.file("node.sqlite")))
    }
}
