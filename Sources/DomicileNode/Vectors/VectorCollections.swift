import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicileStorage
import DomicileVectors
import Foundation

/// The node's in-memory vector indexes, rebuilt from SQLite at start: per
/// collection, its vectors; this region's noised exports of them (what a
/// fresh federated search is answered from, eligible as consent says); and
/// the other regions' noised copies this region holds, per source region
/// (docs/FEDERATION.md, "Noised embeddings").
///
/// Every change to an index is asked for inside the write transaction that
/// changes the `vectors` table, on the writer thread, and applies in that
/// order: a batch's links are made on other threads after its rows, but
/// the index's next write waits for them (`VectorIndex.withWriter`). So a
/// removal (revocation, erasure) is out of the index before its
/// transaction commits. When a transaction that touched an index fails,
/// `resynchronize` puts the subject's vectors back as SQLite has them.
final class VectorCollections: Sendable {
    struct Collection: Sendable {
        let definition: CollectionDefinition
        let index: VectorIndex
        /// This region's noised copies as exported, labelled by pid.
        let exports: VectorIndex
        /// Other regions' noised copies, per source region.
        let replicas: Replicas
    }

    /// The noised copies of one collection that other regions exported, one
    /// index per source region, made as their first copy arrives.
    final class Replicas: Sendable {
        let definition: CollectionDefinition
        private let indexes = Locked<[RegionID: VectorIndex]>([:])
        /// Per source region, the newest export or retraction time held.
        private let newest = Locked<[RegionID: Timestamp]>([:])

        init(definition: CollectionDefinition) { self.definition = definition }

        var regions: [RegionID: VectorIndex] { indexes.withLock { $0 } }

        /// How recent `region`'s copies are: its newest export or retraction held here.
        func asOf(_ region: RegionID) -> Timestamp? { newest.withLock { $0[region] } }

        func noted(_ time: Timestamp, from region: RegionID) {
            newest.withLock { $0[region] = max($0[region] ?? time, time) }
        }

        /// Holds `vector` as `region`'s copy of `pid`, in place of the one held;
        /// one of another dimension, or that the index refuses, is not held.
        func upsert(_ pid: PID, vector: [Float], from region: RegionID) {
            remove(pid, from: region)
            guard vector.count == definition.dimension else { return }
            let index = indexes.withLock { indexes in
                if let index = indexes[region] { return index }
                let index = VectorCollections.emptyIndex(for: definition)
                indexes[region] = index
                return index
            }
            try? index.upsert(pid.rawValue, vector: vector, eligibleUntil: .max)
        }

        func remove(_ pid: PID, from region: RegionID? = nil) {
            for (source, index) in regions where region == nil || source == region { index.remove(pid.rawValue) }
        }
    }

    private let collections = Locked<[Name: Collection]>([:])
    /// Per collection, its graph as last saved or restored (GraphSnapshots.swift).
    let savedGraphs = Locked<[Name: SavedGraph]>([:])

    func collection(_ name: Name) -> Collection? { collections.withLock { $0[name] } }

    /// Collections serving one of `purposes` (every collection when nil).
    func collections(for purposes: Set<Purpose>?) -> [Collection] {
        collections.withLock { all in
            all.values.filter { purposes?.contains($0.definition.purpose) ?? true }.sorted { $0.definition.name < $1.definition.name }
        }
    }

    /// A new empty index for a new (or reshaped, empty) collection, with the
    /// other regions' copies `database` holds for it; or the existing
    /// indexes under new settings that do not change their shape.
    func install(_ definition: CollectionDefinition, services: NodeServices, from database: Database) throws {
        if let existing = collection(definition.name), VectorRecords.sameShape(existing.definition, definition) {
            // Without export settings nothing is exported any more (the caller retracted what was).
            let exports = definition.export == nil ? Self.emptyIndex(for: definition) : existing.exports
            collections.withLock {
                $0[definition.name] = Collection(definition: definition, index: existing.index, exports: exports, replicas: existing.replicas)
            }
            return
        }
        let collection = Collection(definition: definition, index: Self.emptyIndex(for: definition),
                                    exports: Self.emptyIndex(for: definition), replicas: Replicas(definition: definition))
        try loadReplicas(of: collection, services: services, from: database)
        collections.withLock { $0[definition.name] = collection }
    }

    static func emptyIndex(for definition: CollectionDefinition) -> VectorIndex {
        VectorIndex(dimension: definition.dimension, metric: definition.metric, kind: definition.index)
    }

    /// Takes the subject out of these collections' indexes (its vector and its noised export).
    func remove(_ pid: PID, from names: [Name]) {
        for name in names {
            collection(name)?.index.remove(pid.rawValue)
            collection(name)?.exports.remove(pid.rawValue)
        }
    }

    /// Moves the subject's eligibility in every index that holds it to what
    /// its grants now say. Asked of every index, not only of those that
    /// contain the pid now: a batch's vector still being linked is not
    /// contained yet, and `setEligibleUntil` moves its deadline too.
    func refreshEligibility(of pid: PID, eligibleUntil: (Purpose) -> Int64) {
        for collection in collections(for: nil) {
            let deadline = eligibleUntil(collection.definition.purpose)
            for index in [collection.index, collection.exports] { index.setEligibleUntil(pid.rawValue, deadline) }
        }
    }

    /// Brings the replicas to what the federation's records `entries` (held
    /// here, of any origin) say: another region's noised copy is held or
    /// replaced, a retraction drops it, and an erasure intent drops every
    /// copy of the pids it erases.
    /// A copy is held only by a collection of the same name serving the same
    /// purpose (its subjects' consent is for that purpose).
    func applyFederated(_ entries: [FederationEntry], here region: RegionID, now: Timestamp) {
        for entry in entries {
            switch entry.body.record {
            case .noisedEmbedding(let embedding)? where embedding.region != region:
                guard let collection = collection(embedding.collection), collection.definition.purpose == embedding.purpose else { continue }
                let replicas = collection.replicas
                replicas.noted(min(embedding.exportedAt, now), from: embedding.region)
                if let vector = embedding.vector {
                    replicas.upsert(embedding.pid, vector: vector, from: embedding.region)
                } else {
                    replicas.remove(embedding.pid, from: embedding.region)
                }
            case .erasureIntent(let intent)?:
                for collection in collections(for: nil) {
                    for pid in intent.erasedPids { collection.replicas.remove(pid) }
                }
            default:
                continue
            }
        }
    }

    /// Vectors read from SQLite before they are linked together, on every
    /// core, at a restart.
    static let loadBatch = 16_384

    /// Loads every collection and its vectors (in the order they were
    /// written, so the graph is rebuilt as it was built).
    func load(services: NodeServices, from database: Database) throws {
        var loaded: [Name: Collection] = [:]
        for definition in try VectorRecords.collections(in: database) {
            // The saved graph and the writes since, when there is one that fits; else a rebuild.
            let restored = restoreGraph(of: definition, services: services, from: database)
            let collection = Collection(definition: definition, index: restored ?? Self.emptyIndex(for: definition),
                                        exports: Self.emptyIndex(for: definition), replicas: Replicas(definition: definition))
            if restored == nil {
                // Full batches are linked on every core (`upsertAll`); the rest, and so a collection smaller than a
                // batch, on one thread, as it was written: rebuilt as the same graph (DECISIONS.md, "Vectors and search").
                var batch: [VectorItem] = []
                let threads = ProcessInfo.processInfo.activeProcessorCount
                try VectorRecords.forEachVector(in: definition, keys: services.keys, database: database) { pid, vector, hasGrant, expiry in
                    let deadline = services.consentGate.eligibleUntil(definition.purpose, grant: hasGrant ? expiry ?? .max : nil)
                    batch.append(VectorItem(label: pid.rawValue, vector: vector, eligibleUntil: deadline))
                    if batch.count == Self.loadBatch {
                        try collection.index.upsertAll(batch, threads: threads)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                try collection.index.upsertAll(batch, threads: 1)
            }
            try EmbeddingExportRecords.forEachExported(definition.name, purpose: definition.purpose, keys: services.keys,
                                                       database: database) { pid, vector, hasGrant, expiry in
                let deadline = services.consentGate.eligibleUntil(definition.purpose, grant: hasGrant ? expiry ?? .max : nil)
                try? collection.exports.upsert(pid.rawValue, vector: vector, eligibleUntil: deadline)
            }
            try loadReplicas(of: collection, services: services, from: database)
            loaded[definition.name] = collection
        }
        collections.withLock { $0 = loaded }
    }

    /// The other regions' current noised copies for the collection, as `federation_entries` holds them.
    private func loadReplicas(of collection: Collection, services: NodeServices, from database: Database) throws {
        for embedding in try FederationRecords.replicas(of: collection.definition.name, here: services.region, keys: services.keys,
                                                        in: database) {
            guard embedding.purpose == collection.definition.purpose else { continue }
            collection.replicas.noted(min(embedding.exportedAt, services.clock.now()), from: embedding.region)
            if let vector = embedding.vector { collection.replicas.upsert(embedding.pid, vector: vector, from: embedding.region) }
        }
    }

    /// Puts the subject's vectors in every index back as `database` has
    /// them (after a transaction that changed an index failed).
    func resynchronize(_ pid: PID, services: NodeServices, in database: Database) throws {
        let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database)
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        for collection in collections(for: nil) {
            let name = collection.definition.name
            let deadline = services.consentGate.eligibleUntil(collection.definition.purpose, grants: grants)
            if let key, let vector = try VectorRecords.vector(collection: name, pid: pid, key: key, in: database) {
                try collection.index.upsert(pid.rawValue, vector: vector, eligibleUntil: deadline)
            } else {
                collection.index.remove(pid.rawValue)
            }
            try resynchronizeExport(of: pid, in: collection, key: key, eligibleUntil: deadline, in: database)
        }
    }

    /// Puts the subject's noised copies in the exports indexes as `database`
    /// has them (after an export pass committed).
    func resynchronizeExports(of pid: PID, services: NodeServices, in database: Database) throws {
        let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database)
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        for collection in collections(for: nil) {
            let deadline = services.consentGate.eligibleUntil(collection.definition.purpose, grants: grants)
            try resynchronizeExport(of: pid, in: collection, key: key, eligibleUntil: deadline, in: database)
        }
    }

    private func resynchronizeExport(of pid: PID, in collection: Collection, key: AESGCMKey?, eligibleUntil deadline: Int64,
                                     in database: Database) throws {
        if collection.definition.export != nil, let key,
           let noised = try EmbeddingExportRecords.exported(collection.definition.name, pid: pid, key: key, in: database) {
            try? collection.exports.upsert(pid.rawValue, vector: noised, eligibleUntil: deadline)
        } else {
            collection.exports.remove(pid.rawValue)
        }
    }
}
