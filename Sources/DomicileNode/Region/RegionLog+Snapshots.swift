import DomicileConsensus
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// Snapshots: a follower too far behind for the leader's (compacted) log
/// gets node.sqlite itself. The leader makes an online backup of its
/// applied state (at or after the snapshot's index, which its
/// `region_log_applied` row records) and serves it in bounded chunks with
/// its SHA-256; the follower writes them in order, checks the digest and
/// the file, restores it into its live database (`Database.restore`),
/// reloads what it keeps in memory, and only then lets the machine take
/// the snapshot message. Entries the backup already holds are skipped
/// when they arrive (they are at or below the applied index).
extension RegionLog {
    // MARK: The leader's side

    /// Answers a follower's snapshot request (an empty answer refuses), on
    /// a thread of `blocking`: a backup reads the whole database.
    func serveSnapshot(_ bytes: [UInt8]) async -> [UInt8] {
        await withCheckedContinuation { continuation in
            blocking.submit { [self] in continuation.resume(returning: answerSnapshot(bytes)) }
        }
    }

    private func answerSnapshot(_ bytes: [UInt8]) -> [UInt8] {
        guard let request = try? SnapshotTransfer.decodeRequest(bytes) else {
            statistics.withLock { $0.messagesRefused += 1 }
            return []
        }
        switch request {
        case .open(let index):
            // Only what this node has applied can be served.
            guard index <= appliedIndex else { return [] }
            do {
                let (id, reader) = try outgoingSnapshot(atLeast: index)
                return SnapshotTransfer.encode(SnapshotTransfer.Offer(id: id, byteCount: reader.byteCount, digest: reader.digest))
            } catch {
                logger.error("region log snapshot not made", ["error": .string("\(error)")])
                return []
            }
        case .chunk(let id, let offset):
            let reader = snapshots.withLock { $0.outgoing?.id == id ? $0.outgoing?.reader : nil }
            guard let reader, let chunk = try? reader.chunk(at: offset) else { return [] }
            if offset + UInt64(chunk.bytes.count) == reader.byteCount { snapshots.withLock { $0.sent += 1 } }
            return chunk.bytes
        }
    }

    /// The backup served to followers, made anew when the last one is older
    /// than `index`.
    private func outgoingSnapshot(atLeast index: UInt64) throws -> (UInt64, SnapshotChunkReader) {
        if let current = snapshots.withLock({ $0.outgoing }), current.id >= index { return current }
        let path = (dataDirectory as NSString).appendingPathComponent("\(Self.outgoingPrefix)\(UUID().uuidString).sqlite")
        // Read in the backup's own snapshot: exactly what it holds.
        var id: UInt64 = 0
        try store.backup(to: path) { id = try RegionLogRecords.appliedIndex(in: $0) }
        let reader = try SnapshotChunkReader(path: path)
        let replaced = snapshots.withLock { state -> SnapshotChunkReader? in
            defer { state.outgoing = (id, reader) }
            return state.outgoing?.reader
        }
        if let replaced { unlink(replaced.path) }
        return (id, reader)
    }

    func dropOutgoingSnapshot() {
        if let reader = snapshots.withLock({ state -> SnapshotChunkReader? in
            defer { state.outgoing = nil }
            return state.outgoing?.reader
        }) { unlink(reader.path) }
    }

    // MARK: The follower's side

    /// Fetches and installs the state the leader's snapshot message stands
    /// for, then hands the message to the machine. One at a time; a
    /// failed transfer is dropped (the leader sends the snapshot again).
    func install(_ message: RaftMessage) {
        guard case .snapshot(let snapshot) = message.body, let channel else { return }
        // A late or repeated message, or one of an older term: nothing to install.
        let status = self.status
        guard snapshot.metadata.index > appliedIndex, message.term >= status.term else { return }
        let started = snapshots.withLock { state -> Bool in
            guard !state.installing else { return false }
            state.installing = true
            return true
        }
        guard started else { return }
        Task {
            defer { snapshots.withLock { $0.installing = false } }
            do {
                let (path, offer) = try await fetch(snapshot.metadata.index, from: message.from, over: channel)
                defer { unlink(path) }
                let follower = self.follower
                let restoredApplied = try await store.writer.outsideTransaction { database -> UInt64 in
                    // Checked where applies run: never restore a state older than what is applied here.
                    let current = try RegionLogRecords.appliedIndex(in: database)
                    guard offer.id > current else { return current }
                    try database.restore(from: path)
                    try follower.installed(in: database)
                    return try RegionLogRecords.appliedIndex(in: database)
                }
                follower.finishedInstall()
                published(restoredApplied)
                snapshots.withLock { $0.installed += 1 }
                logger.info("region log snapshot installed", ["index": .int(Int64(snapshot.metadata.index)),
                                                              "applied_index": .int(Int64(restoredApplied))])
                inbox.add(message: message)
            } catch {
                logger.error("region log snapshot not installed", ["error": .string("\(error)")])
            }
        }
    }

    private func fetch(_ index: UInt64, from leader: NodeName,
                       over channel: RegionChannel) async throws -> (String, SnapshotTransfer.Offer) {
        func ask(_ request: SnapshotTransfer.Request) async throws -> [UInt8] {
            try await channel.request(SnapshotTransfer.encode(request), to: leader, deadline: .now + .seconds(30))
        }
        let offer = try SnapshotTransfer.decodeOffer(try await ask(.open(atLeast: index)))
        guard offer.id >= index, offer.id > appliedIndex else { throw SnapshotTransfer.Malformed() }
        let receiver = try SnapshotChunkWriter(directory: dataDirectory, byteCount: offer.byteCount)
        while receiver.receivedByteCount < offer.byteCount {
            let bytes = try await ask(.chunk(id: offer.id, offset: receiver.receivedByteCount))
            try receiver.append(SnapshotChunk(offset: receiver.receivedByteCount, bytes: bytes))
        }
        return (try receiver.finish(expectedDigest: offer.digest), offer)
    }

    static let outgoingPrefix = "snapshot-out-"

    /// Backups a crash left behind (each a full copy of the database).
    static func removeOutgoingLeftovers(in directory: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix(outgoingPrefix) && name.hasSuffix(".sqlite") {
            unlink((directory as NSString).appendingPathComponent(name))
        }
    }
}
