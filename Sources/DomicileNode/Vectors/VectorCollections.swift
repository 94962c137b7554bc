import DomicileModel
import DomicileStorage
import DomicileVectors

/// The node's in-memory vector indexes, one per collection, rebuilt from
/// SQLite at start.
///
/// Every change to an index is made inside the write transaction that
/// changes the `vectors` table, on the writer thread: so the indexes change
/// in commit order, and a removal (revocation, erasure) is out of the index
/// before its transaction commits. When a transaction that touched an
/// index fails, `resynchronize` puts the subject's vectors back as SQLite
/// has them.
final class VectorCollections: Sendable {
    struct Collection: Sendable {
        let definition: CollectionDefinition
        let index: VectorIndex
    }

    private let collections = Locked<[Name: Collection]>([:])

    func collection(_ name: Name) -> Collection? { collections.withLock { $0[name] } }

    /// Collections serving one of `purposes` (every collection when nil).
    func collections(for purposes: Set<Purpose>?) -> [Collection] {
        collections.withLock { all in
            all.values.filter { purposes?.contains($0.definition.purpose) ?? true }.sorted { $0.definition.name < $1.definition.name }
        }
    }

    /// A new empty index for a new (or reshaped, empty) collection, or the
    /// existing index under new settings that do not change its shape.
    func install(_ definition: CollectionDefinition) {
        collections.withLock { all in
            if let existing = all[definition.name], VectorRecords.sameShape(existing.definition, definition) {
                all[definition.name] = Collection(definition: definition, index: existing.index)
            } else {
                all[definition.name] = Collection(definition: definition, index: Self.emptyIndex(for: definition))
            }
        }
    }

    static func emptyIndex(for definition: CollectionDefinition) -> VectorIndex {
        VectorIndex(dimension: definition.dimension, metric: definition.metric, kind: definition.index)
    }

    /// Takes the subject out of these collections' indexes.
    func remove(_ pid: PID, from names: [Name]) {
        for name in names { collection(name)?.index.remove(pid.rawValue) }
    }

    /// Moves the subject's eligibility in every index that holds it to what
    /// its grants now say.
    func refreshEligibility(of pid: PID, eligibleUntil: (Purpose) -> Int64) {
        for collection in collections(for: nil) where collection.index.contains(pid.rawValue) {
            collection.index.setEligibleUntil(pid.rawValue, eligibleUntil(collection.definition.purpose))
        }
    }

    /// Loads every collection and its vectors (in the order they were
    /// written, so the graph is rebuilt as it was built).
    func load(services: NodeServices, from database: Database) throws {
        var loaded: [Name: Collection] = [:]
        for definition in try VectorRecords.collections(in: database) {
            let index = Self.emptyIndex(for: definition)
            try VectorRecords.forEachVector(in: definition, keys: services.keys, database: database) { pid, vector, hasGrant, expiry in
                let deadline = services.consentGate.eligibleUntil(definition.purpose, grant: hasGrant ? expiry ?? .max : nil)
                try index.upsert(pid.rawValue, vector: vector, eligibleUntil: deadline)
            }
            loaded[definition.name] = Collection(definition: definition, index: index)
        }
        collections.withLock { $0 = loaded }
    }

    /// Puts the subject's vectors in every index back as `database` has
    /// them (after a transaction that changed an index failed).
    func resynchronize(_ pid: PID, services: NodeServices, in database: Database) throws {
        let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database)
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        for collection in collections(for: nil) {
            let name = collection.definition.name
            guard let key, let vector = try VectorRecords.vector(collection: name, pid: pid, key: key, in: database) else {
                collection.index.remove(pid.rawValue)
                continue
            }
            let purpose = collection.definition.purpose
            let deadline = services.consentGate.eligibleUntil(purpose, grants: grants)
            try collection.index.upsert(pid.rawValue, vector: vector, eligibleUntil: deadline)
        }
    }
}
