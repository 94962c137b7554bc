import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileVectors
import Foundation

/// Saved graphs of the collections' vector indexes, so a restart does not
/// rebuild every graph from SQLite (docs/DECISIONS.md, "Graph snapshots";
/// format: docs/FORMATS.md, "Graph snapshot file").
///
/// A file holds one collection's graph — links, levels, slot states, labels,
/// free list, entry point, level draw — never a vector, sealed whole under
/// the region data key and bound to the collection, the region and this
/// node. It names the collection's write position (`vector_write_positions`)
/// it was taken at: at start the graph is restored, each vector written up
/// to that position is read from SQLite (sealed under its subject's key, as
/// for a rebuild) and put back into the slot the graph gave it, the slots of
/// vectors removed or rewritten since are retired, and the writes after the
/// position are replayed in their order. Anything that does not fit is
/// logged and the collection is rebuilt from SQLite instead.
struct GraphSnapshots: Sendable {
    let directory: String
    let keys: KeySet
    let region: RegionID
    let node: NodeName
    let logger: Logger

    /// A saved graph is at most this large (64 M slots of a few hundred bytes would be more; a node that big splits its collections).
    static let fileBytesMax = 64 << 30

    func path(of collection: Name) -> String {
        (directory as NSString).appendingPathComponent("\(collection.rawValue).graph")
    }

    /// What a sealed chunk is bound to: its collection, region and node, its
    /// place and the chunk count (so chunks cannot be dropped, reordered or
    /// moved to another file).
    private func associatedData(_ collection: Name, chunk: Int, of count: Int) -> [UInt8] {
        var bytes = Array("domicile/graph-snapshot/v1".utf8)
        for text in [collection.rawValue, region.rawValue, node.rawValue] {
            bytes.append(UInt8(text.utf8.count))
            bytes.append(contentsOf: text.utf8)
        }
        for value in [UInt32(chunk), UInt32(count)] { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    // MARK: Saving

    /// The graph of `index` and the write position it is at, taken on the
    /// writer outside a transaction (`Writer.outsideTransaction`): the
    /// index then holds exactly what has committed. Nil when the index
    /// cannot be saved (a label the format cannot hold).
    static func capture(_ index: VectorIndex, of collection: Name, in database: Database) throws -> (graph: [UInt8], position: Int64)? {
        let position = try VectorRecords.writePosition(collection, in: database)
        return index.snapshotGraph(position: UInt64(position)).map { ($0, position) }
    }

    /// Seals `graph` and writes it durably in place of the collection's
    /// saved graph (temporary file, fsync, rename, directory fsync).
    func save(_ graph: [UInt8], of collection: Name) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let chunks = GraphSnapshotFile.chunks(of: graph)
        let sealed = chunks.enumerated().map { number, chunk in
            keys.seal(chunk, associatedData: associatedData(collection, chunk: number, of: chunks.count))
        }
        try FileIO.writeAtomically(GraphSnapshotFile.frame(sealed), to: path(of: collection), replacing: true)
    }

    /// Removes the temporary files of saves a crash interrupted.
    func removeLeftovers() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.contains(".graph.tmp-") { unlink((directory as NSString).appendingPathComponent(name)) }
    }

    /// Removes every saved graph (and leftover).
    func removeAll() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.contains(".graph") { unlink((directory as NSString).appendingPathComponent(name)) }
    }

    // MARK: Restoring

    /// Why a saved graph was not used.
    struct Unusable: Error, CustomStringConvertible {
        let description: String
    }

    /// The collection's graph as saved, opened; nil when there is none.
    func open(_ collection: Name) throws -> [UInt8]? {
        let file: [UInt8]
        do { file = try FileIO.read(path(of: collection), byteCountMax: Self.fileBytesMax) } catch {
            if case .notFound = error { return nil }
            throw error
        }
        let sealed = try GraphSnapshotFile.sealedChunks(of: file)
        var graph: [UInt8] = []
        for (number, chunk) in sealed.enumerated() {
            do {
                graph.append(contentsOf: try keys.open(chunk, associatedData: associatedData(collection, chunk: number, of: sealed.count)))
            } catch {
                throw Unusable(description: "chunk \(number) does not open under this node's data keys (\(error))")
            }
        }
        return graph
    }

    /// The collection's index from its saved graph and what `database`
    /// holds, or nil — the reason logged — when there is no saved graph or
    /// it does not fit (the caller then rebuilds). `eligibleUntil` gives a
    /// vector's deadline from its subject's grant (nil: none) and expiry.
    func restore(_ definition: CollectionDefinition, keys regionKeys: RegionKeys, from database: Database,
                 eligibleUntil: (_ hasGrant: Bool, _ expiry: Int64?) -> Int64) -> (index: VectorIndex, report: Report)? {
        let name = definition.name
        do {
            guard let graph = try open(name) else { return nil }
            let restore = try VectorIndex.restoring(graph, dimension: definition.dimension, metric: definition.metric, kind: definition.index)
            let saved = Int64(clamping: restore.position)
            let current = try VectorRecords.writePosition(name, in: database)
            guard saved <= current else {
                throw Unusable(description: "saved at write position \(saved), the database is at \(current)")
            }
            var report = Report(position: saved)
            try VectorRecords.forEachVector(in: definition, written: Int64.min...saved, keys: regionKeys, database: database) { pid, vector, hasGrant, expiry in
                guard try restore.place(pid.rawValue, vector: vector, eligibleUntil: eligibleUntil(hasGrant, expiry)) else {
                    throw Unusable(description: "a vector written before the saved graph is not in it")
                }
            }
            report.placed = restore.placedCount
            report.retired = restore.finish()
            if saved < current {
                try VectorRecords.forEachVector(in: definition, written: (saved + 1)...current, keys: regionKeys, database: database) { pid, vector, hasGrant, expiry in
                    try restore.index.upsert(pid.rawValue, vector: vector, eligibleUntil: eligibleUntil(hasGrant, expiry))
                    report.replayed += 1
                }
            }
            return (restore.index, report)
        } catch {
            // Not tried again at the next start (nor taken for another history's): the next save replaces it.
            unlink(path(of: name))
            logger.warning("saved graph not used: rebuilding", ["collection": .string(name.rawValue), "reason": .string("\(error)")])
            return nil
        }
    }

    /// What a restore did.
    struct Report: Sendable, Equatable {
        /// The write position the graph was saved at.
        var position: Int64
        /// Vectors put back into their slots.
        var placed = 0
        /// Slots of vectors removed or rewritten since, retired.
        var retired = 0
        /// Writes after the position, replayed.
        var replayed = 0
    }
}

/// A collection's graph as last saved (or restored): the write position
/// and live count it holds, and when it was saved (or restored), in
/// milliseconds.
struct SavedGraph: Sendable, Equatable {
    var position: Int64
    var count: Int
    var at: Int64

    /// Writes and removals since, estimated from what moved: the write
    /// position (one per write) and the live count (removals).
    func changes(position now: Int64, count live: Int) -> Int {
        Int(clamping: max(0, now - position)) + abs(live - count)
    }
}

extension VectorCollections {
    /// Removes every saved graph and forgets when each was saved, so the
    /// saver writes each again at its next check (after an erasure).
    func discardSavedGraphs(_ snapshots: GraphSnapshots) {
        snapshots.removeAll()
        savedGraphs.withLock { $0.removeAll() }
    }

    /// The collection's graph restored from its saved file and brought to
    /// what `database` holds, or nil (a rebuild) when the collection is not
    /// a graph, has no saved graph, or its saved graph does not fit.
    func restoreGraph(of definition: CollectionDefinition, services: NodeServices, from database: Database) -> VectorIndex? {
        savedGraphs.withLock { $0[definition.name] = nil }
        guard case .hnsw = definition.index else { return nil }
        let snapshots = GraphSnapshots(services: services)
        let started = services.clock.now().milliseconds
        guard let (index, report) = snapshots.restore(definition, keys: services.keys, from: database, eligibleUntil: { hasGrant, expiry in
            services.consentGate.eligibleUntil(definition.purpose, grant: hasGrant ? expiry ?? .max : nil)
        }) else { return nil }
        let now = services.clock.now().milliseconds
        savedGraphs.withLock { $0[definition.name] = SavedGraph(position: report.position, count: report.placed + report.retired, at: now) }
        services.logger.info("graph restored", ["collection": .string(definition.name.rawValue), "vectors": .int(Int64(report.placed)),
                                                "retired": .int(Int64(report.retired)), "replayed": .int(Int64(report.replayed)),
                                                "ms": .int(now - started)])
        return index
    }
}

/// Saves the graphs of changed collections in the background and at
/// shutdown (limits.graph_snapshot_interval_ms, limits.graph_snapshot_changes).
/// A graph is taken on the writer between transactions (one pass over its
/// slots, writes wait for it, searches do not), then sealed and written off
/// the writer.
final class GraphSnapshotSaver: Sendable {
    /// How often the collections are looked at (at most).
    static let checkMilliseconds: Int64 = 5_000

    private let services: NodeServices
    private let schedule = PeriodicTask()

    init(services: NodeServices) { self.services = services }

    private var interval: Int64 { services.configuration.limits.graphSnapshotIntervalMilliseconds }

    /// With saving turned off (interval 0), graphs saved before are removed:
    /// they would only grow staler (and name subjects erased since).
    func start() {
        let snapshots = GraphSnapshots(services: services)
        snapshots.removeLeftovers()
        guard interval > 0 else { return snapshots.removeAll() }
        schedule.start(everyMilliseconds: min(interval, Self.checkMilliseconds)) { [self] in await save(force: false) }
    }

    func stop() async { await schedule.stop() }

    /// Saves each graph collection that changed since its graph was last
    /// saved and, unless `force`, whose change count or age calls for it.
    /// Returns the collections saved.
    @discardableResult
    func save(force: Bool) async -> [Name] {
        guard interval > 0 else { return [] }
        var saved: [Name] = []
        for collection in services.vectors.collections(for: nil) {
            guard case .hnsw = collection.definition.index else { continue }
            let name = collection.definition.name
            do {
                if try await saveIfDue(collection.index, of: name, force: force) { saved.append(name) }
            } catch {
                services.logger.error("graph not saved", ["collection": .string(name.rawValue), "error": .string("\(type(of: error))")])
            }
        }
        return saved
    }

    private func saveIfDue(_ index: VectorIndex, of name: Name, force: Bool) async throws -> Bool {
        let position = try services.store.read { try VectorRecords.writePosition(name, in: $0) }
        let now = services.clock.now().milliseconds
        let last = services.vectors.savedGraphs.withLock { $0[name] }
        let changes = last?.changes(position: position, count: index.count) ?? (index.count > 0 || position > 0 ? Int.max : 0)
        guard changes > 0 else { return false }
        if !force, let last, changes < services.configuration.limits.graphSnapshotChanges, now - last.at < interval { return false }
        // On the writer between transactions: the index holds exactly what has committed.
        guard let captured = try await services.store.writer.outsideTransaction({ database -> ([UInt8], Int64, Int)? in
            // Not if the collection was reloaded meanwhile (its graph would go out under the new position).
            guard self.services.vectors.collection(name)?.index === index else { return nil }
            return try GraphSnapshots.capture(index, of: name, in: database).map { ($0.graph, $0.position, index.count) }
        }) else { return false }
        let snapshots = GraphSnapshots(services: services)
        try await Self.onOwnThread { try snapshots.save(captured.0, of: name) }
        // Only if the collection still has this index (not reshaped meanwhile).
        if services.vectors.collection(name)?.index === index {
            services.vectors.savedGraphs.withLock { $0[name] = SavedGraph(position: captured.1, count: captured.2, at: now) }
        }
        return true
    }

    /// Runs blocking work (sealing and writing a large file) on a thread of its own, not the cooperative pool's.
    private static func onOwnThread(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}

extension GraphSnapshots {
    /// The node's snapshots, in its data directory's `graphs`.
    init(services: NodeServices) {
        self.init(directory: (services.configuration.dataDirectory as NSString).appendingPathComponent("graphs"),
                  keys: services.keys.data, region: services.region, node: services.configuration.node, logger: services.logger)
    }
}
