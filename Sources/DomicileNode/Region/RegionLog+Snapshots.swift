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

    /// Answers a follower's snapshot request (an empty answer refuses).
    func serveSnapshot(_ bytes: [UInt8]) -> [UInt8] {
        guard let request = try? SnapshotTransfer.decodeRequest(bytes) else {
            statistics.withLock { $0.messagesRefused += 1 }
            return []
        }
        switch request {
        case .open(let index):
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
        let path = (dataDirectory as NSString).appendingPathComponent("snapshot-out-\(UUID().uuidString).sqlite")
        // The backup holds at least what was applied before it began (its
        // own `region_log_applied` row says exactly how much).
        let id = appliedIndex
        try store.backup(to: path)
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
        let started = snapshots.withLock { state -> Bool in
            guard !state.installing else { return false }
            state.installing = true
            return true
        }
        guard started else { return }
        Task {
            defer { snapshots.withLock { $0.installing = false } }
            do {
                let path = try await fetch(snapshot.metadata.index, from: message.from, over: channel)
                defer { unlink(path) }
                let follower = self.follower
                let restoredApplied = try await store.writer.outsideTransaction { database in
                    try database.restore(from: path)
                    try follower.installed(in: database)
                    return try database.fetchOne("SELECT applied_index FROM region_log_applied WHERE id = 1") {
                        UInt64(max(0, $0.int64(0)))
                    } ?? 0
                }
                follower.finished()
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

    private func fetch(_ index: UInt64, from leader: NodeName, over channel: RegionChannel) async throws -> String {
        func ask(_ request: SnapshotTransfer.Request) async throws -> [UInt8] {
            try await channel.request(SnapshotTransfer.encode(request), to: leader, deadline: .now + .seconds(30))
        }
        let offer = try SnapshotTransfer.decodeOffer(try await ask(.open(atLeast: index)))
        guard offer.id >= index else { throw SnapshotTransfer.Malformed() }
        let receiver = try SnapshotChunkWriter(directory: dataDirectory, byteCount: offer.byteCount)
        while receiver.receivedByteCount < offer.byteCount {
            let bytes = try await ask(.chunk(id: offer.id, offset: receiver.receivedByteCount))
            try receiver.append(SnapshotChunk(offset: receiver.receivedByteCount, bytes: bytes))
        }
        return try receiver.finish(expectedDigest: offer.digest)
    }
}
