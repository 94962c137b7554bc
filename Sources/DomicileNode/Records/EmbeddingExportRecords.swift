import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// `embedding_exports`: per collection with export settings and subject, the
/// region's latest noised export of the subject's vector or its retraction
/// (docs/FEDERATION.md, "Noised embeddings"). The noised copy is sealed under
/// the subject's key, so erasing the subject shreds it here as well.
enum EmbeddingExportRecords {
    /// A vector whose current version awaits an export decision.
    struct Candidate: Sendable {
        let pid: PID
        let vectorSeq: Int64
    }

    /// Up to `limit` vectors of `collection` whose current version was
    /// neither exported, nor found uncovered, nor refused for a spent budget
    /// in `period`.
    static func candidates(_ collection: Name, period: String, limit: Int, in database: Database) throws -> [Candidate] {
        try database.fetchAll("""
            SELECT v.pid, v.written_seq FROM vectors v
            LEFT JOIN embedding_exports e ON e.collection = v.collection AND e.pid = v.pid
            WHERE v.collection = ? AND (e.pid IS NULL OR e.vector_seq IS NOT v.written_seq)
              AND NOT (e.skipped_seq IS v.written_seq AND e.skipped_period IS ?)
            ORDER BY v.written_seq LIMIT ?
            """, [collection.rawValue, period, limit]) { row in
            Candidate(pid: try row.decode(0, table: "vectors") { try PID(parsing: $0) }, vectorSeq: row.int64(1))
        }
    }

    /// Records an export of the candidate's vector: its next generation, pending publication.
    static func recordExport(_ noised: EmbeddingNoise.Noised, of candidate: Candidate, collection: Name, settings: ExportSettings,
                             key: AESGCMKey, now: Timestamp, using random: inout some RandomNumberGenerator,
                             in database: Database) throws {
        let generation = try nextGeneration(collection, candidate.pid, in: database)
        let sealed = Envelope.seal(VectorRecords.encode(noised.vector), key: key,
                                   associatedData: associatedData(collection, candidate.pid, generation), using: &random)
        try database.execute("""
            INSERT INTO embedding_exports (collection, pid, state, generation, vector_seq, sealed_noised, sigma, epsilon, delta,
                changed_at, pending, skipped_seq, skipped_period)
            VALUES (?, ?, 'exported', ?, ?, ?, ?, ?, ?, ?, 1, NULL, NULL)
            ON CONFLICT (collection, pid) DO UPDATE SET state = 'exported', generation = excluded.generation,
                vector_seq = excluded.vector_seq, sealed_noised = excluded.sealed_noised, sigma = excluded.sigma,
                epsilon = excluded.epsilon, delta = excluded.delta, changed_at = excluded.changed_at, pending = 1,
                skipped_seq = NULL, skipped_period = NULL
            """, [collection.rawValue, candidate.pid.rawValue, Int64(generation), candidate.vectorSeq, sealed, noised.sigma,
                  settings.epsilon, settings.delta, now.milliseconds])
    }

    /// The candidate's vector version was refused for a spent budget in `period`
    /// (the export it may have had before stays: it was released under budget).
    static func recordSkipped(_ candidate: Candidate, collection: Name, period: String, now: Timestamp, in database: Database) throws {
        try database.execute("""
            INSERT INTO embedding_exports (collection, pid, state, generation, changed_at, pending, skipped_seq, skipped_period)
            VALUES (?, ?, 'none', 0, ?, 0, ?, ?)
            ON CONFLICT (collection, pid) DO UPDATE SET skipped_seq = excluded.skipped_seq, skipped_period = excluded.skipped_period
            """, [collection.rawValue, candidate.pid.rawValue, now.milliseconds, candidate.vectorSeq, period])
    }

    /// The candidate's consent does not cover the collection's purpose: an
    /// earlier export is retracted, and this version is not looked at again.
    static func recordUncovered(_ candidate: Candidate, collection: Name, now: Timestamp, in database: Database) throws {
        try retract(candidate.pid, in: [collection], vectorSeq: candidate.vectorSeq, now: now, in: database)
        try database.execute("""
            INSERT INTO embedding_exports (collection, pid, state, generation, vector_seq, changed_at, pending)
            VALUES (?, ?, 'none', 0, ?, ?, 0)
            ON CONFLICT (collection, pid) DO UPDATE SET vector_seq = excluded.vector_seq
            """, [collection.rawValue, candidate.pid.rawValue, candidate.vectorSeq, now.milliseconds])
    }

    /// Retracts the subject's exports in `collections` (every collection
    /// when nil): its vector left them (deleted, its consent ended, or it
    /// was erased). The retraction takes the next generation, pending
    /// publication; the noised copy is dropped.
    static func retract(_ pid: PID, in collections: [Name]?, vectorSeq: Int64? = nil, now: Timestamp,
                        in database: Database) throws {
        if let collections, collections.isEmpty { return }
        let filter = collections.map { " AND collection IN (\(Array(repeating: "?", count: $0.count).joined(separator: ", ")))" } ?? ""
        try database.execute("""
            UPDATE embedding_exports SET state = 'retracted', generation = generation + 1, vector_seq = ?, sealed_noised = NULL,
                sigma = NULL, epsilon = NULL, delta = NULL, pending = 1, changed_at = ?
            WHERE pid = ? AND state = 'exported'\(filter)
            """, [vectorSeq, now.milliseconds, pid.rawValue] + (collections ?? []).map { $0.rawValue as any DatabaseValueConvertible })
    }

    /// Retracts every export of `collection` (its export settings were removed).
    static func retractAll(_ collection: Name, now: Timestamp, in database: Database) throws {
        try database.execute("""
            UPDATE embedding_exports SET state = 'retracted', generation = generation + 1, vector_seq = NULL, sealed_noised = NULL,
                sigma = NULL, epsilon = NULL, delta = NULL, pending = 1, changed_at = ?
            WHERE collection = ? AND state = 'exported'
            """, [now.milliseconds, collection.rawValue])
    }

    /// This region's exports and retractions the federation has not
    /// published, oldest change first, as records.
    static func unpublished(of region: RegionID, limit: Int, keys: RegionKeys, in database: Database) throws -> [NoisedEmbedding] {
        try database.fetchAll("""
            SELECT e.collection, e.pid, e.state, e.generation, e.sealed_noised, e.sigma, e.epsilon, e.delta, e.changed_at, c.purpose
            FROM embedding_exports e JOIN collections c ON c.name = e.collection
            WHERE e.pending = 1 ORDER BY e.changed_at, e.collection, e.pid LIMIT ?
            """, [limit]) { row -> NoisedEmbedding? in
            let table = "embedding_exports"
            let collection = try row.decode(0, table: table) { try Name($0, what: "collection name") }
            let pid = try row.decode(1, table: table) { try PID(parsing: $0) }
            let generation = UInt64(row.int64(3))
            let content: NoisedEmbedding.Content
            switch row.text(2) {
            case "exported":
                // A subject erased since (its key shredded) has a retraction pending instead; skip until then.
                guard let key = try SubjectRecords.key(of: pid, keys: keys, in: database) else { return nil }
                let vector = try open(row.blob(4), key: key, collection: collection, pid: pid, generation: generation)
                content = .vector(vector, sigma: row.double(5), epsilon: row.double(6), delta: row.double(7))
            case "retracted":
                content = .retracted
            default:
                throw StorageError.corrupt(table: table, column: "state")
            }
            let purpose = try row.decode(9, table: "collections") { try Purpose($0) }
            return try NoisedEmbedding(region: region, collection: collection, purpose: purpose, pid: pid, generation: generation,
                                       exportedAt: Timestamp(milliseconds: row.int64(8)), content: content)
        }.compactMap { $0 }
    }

    /// The federation published these generations (in the transaction that persists its entries).
    static func markPublished(_ embeddings: [NoisedEmbedding], in database: Database) throws {
        for embedding in embeddings {
            try database.execute("UPDATE embedding_exports SET pending = 0 WHERE collection = ? AND pid = ? AND generation = ?",
                                 [embedding.collection.rawValue, embedding.pid.rawValue, Int64(embedding.generation)])
        }
    }

    /// The subject's current noised copy in `collection`, if exported.
    static func exported(_ collection: Name, pid: PID, key: AESGCMKey, in database: Database) throws -> [Float]? {
        let row = try database.fetchOne("""
            SELECT sealed_noised, generation FROM embedding_exports WHERE collection = ? AND pid = ? AND state = 'exported'
            """, [collection.rawValue, pid.rawValue]) { ($0.blob(0), UInt64($0.int64(1))) }
        return try row.map { try open($0.0, key: key, collection: collection, pid: pid, generation: $0.1) }
    }

    /// Every current noised copy of `collection`, with the subject's grant
    /// expiry for `purpose` (nil: no grant), as `VectorRecords.forEachVector`.
    static func forEachExported(_ collection: Name, purpose: Purpose, keys: RegionKeys, database: Database,
                                _ body: (PID, [Float], _ hasGrant: Bool, _ grantExpiry: Int64?) throws -> Void) throws {
        try database.forEach("""
            SELECT e.pid, e.sealed_noised, e.generation, a.pid IS NOT NULL, a.expires_at FROM embedding_exports e
            LEFT JOIN consent_active a ON a.pid = e.pid AND a.purpose = ?
            WHERE e.collection = ? AND e.state = 'exported' ORDER BY e.changed_at, e.pid
            """, [purpose.rawValue, collection.rawValue]) { row in
            let pid = try row.decode(0, table: "embedding_exports") { try PID(parsing: $0) }
            guard let key = try SubjectRecords.key(of: pid, keys: keys, in: database) else { return }
            let vector = try open(row.blob(1), key: key, collection: collection, pid: pid, generation: UInt64(row.int64(2)))
            try body(pid, vector, row.bool(3), row.optionalInt64(4))
        }
    }

    /// Exports, retractions and budget refusals of `collection` (every collection when nil).
    static func counts(_ collection: Name?, in database: Database) throws -> (exported: Int, retracted: Int, overBudget: Int) {
        try database.fetchOne("""
            SELECT coalesce(sum(state = 'exported'), 0), coalesce(sum(state = 'retracted'), 0),
                   coalesce(sum(skipped_seq IS NOT NULL), 0)
            FROM embedding_exports WHERE ?1 IS NULL OR collection = ?1
            """, [collection?.rawValue]) { (Int($0.int64(0)), Int($0.int64(1)), Int($0.int64(2))) } ?? (0, 0, 0)
    }

    private static func nextGeneration(_ collection: Name, _ pid: PID, in database: Database) throws -> UInt64 {
        UInt64(try database.fetchOne("SELECT generation FROM embedding_exports WHERE collection = ? AND pid = ?",
                                     [collection.rawValue, pid.rawValue]) { $0.int64(0) } ?? 0) + 1
    }

    private static func open(_ sealed: [UInt8], key: AESGCMKey, collection: Name, pid: PID,
                             generation: UInt64) throws(StorageError) -> [Float] {
        let plain = try? Envelope.open(sealed, key: key, associatedData: associatedData(collection, pid, generation))
        return try StorageError.decoded(plain.flatMap(VectorRecords.decode), table: "embedding_exports", column: "sealed_noised")
    }

    private static func associatedData(_ collection: Name, _ pid: PID, _ generation: UInt64) -> [UInt8] {
        Array("noised/\(collection.rawValue)/\(pid.rawValue)/\(generation)".utf8)
    }
}
