import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileVectors

/// Collections and vectors in SQLite. Vectors are sealed under the
/// subject's key, so erasing the subject makes every copy unreadable.
enum VectorRecords {
    // MARK: Collections

    private static let collectionColumns =
        "name, dimension, metric, purpose, index_kind, m, ef_construction, ef, export_epsilon, export_delta, export_clip_norm, target_recall"

    static func collections(in database: Database) throws -> [CollectionDefinition] {
        try database.fetchAll("SELECT \(collectionColumns) FROM collections ORDER BY name", [], decodeCollection)
    }

    static func collection(_ name: Name, in database: Database) throws -> CollectionDefinition? {
        try database.fetchOne("SELECT \(collectionColumns) FROM collections WHERE name = ?", [name.rawValue], decodeCollection)
    }

    private static func decodeCollection(_ row: Row) throws(StorageError) -> CollectionDefinition {
        let table = "collections"
        let name = try row.decode(0, table: table) { try Name($0, what: "collection name") }
        let metric = try row.decode(2, table: table, Metric.init(rawValue:))
        let purpose = try row.decode(3, table: table) { try Purpose($0) }
        let index = try row.decode(4, table: table) { kind -> IndexKind? in
            switch kind {
            case "flat": return .flat
            case "hnsw": return .hnsw(HNSWSettings(m: Int(row.int64(5)), efConstruction: Int(row.int64(6)), ef: Int(row.int64(7))))
            default: return nil
            }
        }
        var export: ExportSettings?
        if let epsilon = row.optionalDouble(8), let delta = row.optionalDouble(9), let clipNorm = row.optionalDouble(10) {
            export = ExportSettings(epsilon: epsilon, delta: delta, clipNorm: clipNorm)
        }
        return CollectionDefinition(name: name, dimension: Int(row.int64(1)), metric: metric, purpose: purpose, index: index, export: export,
                                    targetRecall: row.optionalDouble(11))
    }

    enum Upsert: Equatable {
        case created
        case updated
        /// Dimension, metric, purpose or index changed while vectors exist: refused.
        case inUse(vectorCount: Int64)
    }

    /// Creates or updates a collection. Only its export settings and default
    /// search width may change while it holds vectors.
    static func upsert(_ definition: CollectionDefinition, now: Timestamp, in database: Database) throws -> Upsert {
        let existing = try collection(definition.name, in: database)
        if let existing, !sameShape(existing, definition) {
            let count = try vectorCount(definition.name, in: database)
            if count > 0 { return .inUse(vectorCount: count) }
        }
        let (kind, m, efConstruction, ef): (String, Int, Int, Int) = switch definition.index {
        case .flat: ("flat", 0, 0, 0)
        case .hnsw(let settings): ("hnsw", settings.m, settings.efConstruction, settings.ef)
        }
        try database.execute("""
            INSERT INTO collections (\(collectionColumns), updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET dimension = excluded.dimension, metric = excluded.metric, purpose = excluded.purpose,
                index_kind = excluded.index_kind, m = excluded.m, ef_construction = excluded.ef_construction, ef = excluded.ef,
                export_epsilon = excluded.export_epsilon, export_delta = excluded.export_delta,
                export_clip_norm = excluded.export_clip_norm, target_recall = excluded.target_recall, updated_at = excluded.updated_at
            """, [definition.name.rawValue, definition.dimension, definition.metric.rawValue, definition.purpose.rawValue, kind, m,
                  efConstruction, ef, definition.export?.epsilon, definition.export?.delta, definition.export?.clipNorm, definition.targetRecall,
                  now.milliseconds])
        return existing == nil ? .created : .updated
    }

    /// Whether two definitions index the same vectors the same way (the
    /// default search width aside).
    static func sameShape(_ a: CollectionDefinition, _ b: CollectionDefinition) -> Bool {
        guard a.dimension == b.dimension, a.metric == b.metric, a.purpose == b.purpose else { return false }
        switch (a.index, b.index) {
        case (.flat, .flat): return true
        case (.hnsw(let x), .hnsw(let y)): return x.m == y.m && x.efConstruction == y.efConstruction
        default: return false
        }
    }

    static func vectorCount(_ collection: Name, in database: Database) throws -> Int64 {
        try database.fetchOne("SELECT count(*) FROM vectors WHERE collection = ?", [collection.rawValue]) { $0.int64(0) } ?? 0
    }

    // MARK: Vectors

    /// Stores (or replaces) a subject's vector, linked to the coverage in
    /// force for the collection's purpose.
    static func write(_ vector: [Float], collection: Name, pid: PID, key: AESGCMKey, grounds: ConsentGate.Grounds,
                      now: Timestamp, using random: inout some RandomNumberGenerator, in database: Database) throws {
        let sealed = Envelope.seal(encode(vector), key: key, associatedData: associatedData(collection, pid), using: &random)
        // A rewrite takes the next written_seq too: the row moves to the end of the rebuild order, as the vector does in the index.
        try database.execute("""
            INSERT INTO vector_write_positions (collection, written_seq) VALUES (?, 1)
            ON CONFLICT (collection) DO UPDATE SET written_seq = written_seq + 1
            """, [collection.rawValue])
        try database.execute("""
            INSERT INTO vectors (collection, pid, sealed_vector, basis, receipt_id, written_at, written_seq)
            VALUES (?, ?, ?, ?, ?, ?, (SELECT written_seq FROM vector_write_positions WHERE collection = ?))
            ON CONFLICT (collection, pid) DO UPDATE SET sealed_vector = excluded.sealed_vector, basis = excluded.basis,
                receipt_id = excluded.receipt_id, written_at = excluded.written_at, written_seq = excluded.written_seq
            """, [collection.rawValue, pid.rawValue, sealed, grounds.basis.rawValue, grounds.receiptID, now.milliseconds,
                  collection.rawValue])
    }

    /// Deletes one vector; returns whether there was one.
    /// Its noised export, if any, is retracted in the same transaction.
    static func delete(collection: Name, pid: PID, now: Timestamp, in database: Database) throws -> Bool {
        try database.execute("DELETE FROM vectors WHERE collection = ? AND pid = ?", [collection.rawValue, pid.rawValue])
        let deleted = database.changes > 0
        if deleted { try EmbeddingExportRecords.retract(pid, in: [collection], now: now, in: database) }
        return deleted
    }

    /// Deletes the subject's vectors in collections of these purposes (or
    /// in every collection when nil), retracting their noised exports;
    /// returns the collections they were in.
    static func purge(_ pid: PID, purposes: Set<Purpose>?, now: Timestamp, in database: Database) throws -> [Name] {
        let rows = try database.fetchAll("""
            SELECT v.collection, c.purpose FROM vectors v JOIN collections c ON c.name = v.collection WHERE v.pid = ? ORDER BY v.collection
            """, [pid.rawValue]) { row in
            (try row.decode(0, table: "vectors") { try Name($0, what: "collection name") },
             try row.decode(1, table: "collections") { try Purpose($0) })
        }
        var purged: [Name] = []
        for (collection, purpose) in rows {
            if let purposes, !purposes.contains(purpose) { continue }
            try database.execute("DELETE FROM vectors WHERE collection = ? AND pid = ?", [collection.rawValue, pid.rawValue])
            purged.append(collection)
        }
        try EmbeddingExportRecords.retract(pid, in: purged, now: now, in: database)
        return purged
    }

    /// The subject's vector in a collection, decrypted.
    static func vector(collection: Name, pid: PID, key: AESGCMKey, in database: Database) throws -> [Float]? {
        let sealed = try database.fetchOne("SELECT sealed_vector FROM vectors WHERE collection = ? AND pid = ?",
                                           [collection.rawValue, pid.rawValue]) { $0.blob(0) }
        return try sealed.map { try open($0, key: key, collection: collection, pid: pid) }
    }

    /// The written_seq of the collection's latest vector write (0: none yet).
    static func writePosition(_ collection: Name, in database: Database) throws -> Int64 {
        try database.fetchOne("SELECT written_seq FROM vector_write_positions WHERE collection = ?", [collection.rawValue]) {
            $0.int64(0)
        } ?? 0
    }

    /// Every vector of a collection in the order it was written (its
    /// `written_seq`, the same on every node of the region), with the
    /// subject's grant expiry for the collection's purpose (nil: no grant);
    /// only those whose written_seq is in `written` when given.
    static func forEachVector(in collection: CollectionDefinition, written: ClosedRange<Int64>? = nil, keys: RegionKeys,
                              database: Database,
                              _ body: (PID, [Float], _ hasGrant: Bool, _ grantExpiry: Int64?) throws -> Void) throws {
        let range = written ?? Int64.min...Int64.max
        try database.forEach("""
            SELECT v.pid, v.sealed_vector, a.pid IS NOT NULL, a.expires_at FROM vectors v
            LEFT JOIN consent_active a ON a.pid = v.pid AND a.purpose = ?
            WHERE v.collection = ? AND v.written_seq BETWEEN ? AND ? ORDER BY v.written_seq, v.pid
            """, [collection.purpose.rawValue, collection.name.rawValue, range.lowerBound, range.upperBound]) { row in
            let pid = try row.decode(0, table: "vectors") { try PID(parsing: $0) }
            // A subject without a key was erased: its vectors can no longer be read.
            guard let key = try SubjectRecords.key(of: pid, keys: keys, in: database) else { return }
            try body(pid, try open(row.blob(1), key: key, collection: collection.name, pid: pid), row.bool(2), row.optionalInt64(3))
        }
    }

    /// Little-endian IEEE 754 binary32, one after another (docs/FORMATS.md).
    static func encode(_ vector: [Float]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vector.count * 4)
        for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    /// A stored vector, opened and decoded; one that does not open or decode is corrupt data.
    static func open(_ sealed: [UInt8], key: AESGCMKey, collection: Name, pid: PID) throws(StorageError) -> [Float] {
        let plain = try? Envelope.open(sealed, key: key, associatedData: associatedData(collection, pid))
        return try StorageError.decoded(plain.flatMap(decode), table: "vectors", column: "sealed_vector")
    }

    static func decode(_ bytes: [UInt8]) -> [Float]? {
        guard bytes.count % 4 == 0 else { return nil }
        return stride(from: 0, to: bytes.count, by: 4).map { offset in
            Float(bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
                  | UInt32(bytes[offset + 3]) << 24)
        }
    }

    static func associatedData(_ collection: Name, _ pid: PID) -> [UInt8] {
        Array("vector/\(collection.rawValue)/\(pid.rawValue)".utf8)
    }
}
