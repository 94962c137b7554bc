import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import DomicileVectors

/// Noised embeddings for the federation's cross-region search (DESIGN.md
/// section 8, docs/FEDERATION.md "Noised embeddings"): for each collection
/// with export settings, one noised copy of each covered subject's vector
/// per version of that vector — not per query, so repeated searches cannot
/// average the noise away. Each copy is charged to the subject's embedding
/// budget in the transaction that records it, before the federation may
/// publish it; over budget the vector stays local (and is counted).
/// Retractions are made where a vector leaves (`VectorRecords.purge`,
/// `delete`), in the same transaction.
enum EmbeddingExports {
    /// Vectors looked at per collection and pass.
    static let batch = 256

    /// What a pass did: copies exported, and whether a collection filled its batch (more may wait).
    struct Pass: Sendable, Equatable {
        var exported = 0
        var more = false
    }

    /// One pass, on the node that drives the region's federation: exports
    /// (or refuses) the current version of every vector that awaits a
    /// decision, up to `batch` per collection.
    @discardableResult
    static func exportPending(services: NodeServices) async throws -> Pass {
        let collections = services.vectors.collections(for: nil).filter { $0.definition.export != nil }
        guard !collections.isEmpty, services.policy.regions.count > 1 else { return Pass() }
        let now = services.clock.now()
        let period = services.configuration.limits.privacyPeriod.key(at: now)
        let waiting = try services.store.read { database in
            try collections.contains { !(try EmbeddingExportRecords.candidates($0.definition.name, period: period, limit: 1, in: database)).isEmpty }
        }
        guard waiting else { return Pass() }
        let touched = Locked<[PID]>([])
        let pass: Pass
        do {
            pass = try await services.store.write { database in
                var pass = Pass()
                for collection in collections {
                    let candidates = try EmbeddingExportRecords.candidates(collection.definition.name, period: period, limit: batch,
                                                                           in: database)
                    pass.more = pass.more || candidates.count == batch
                    for candidate in candidates {
                        touched.withLock { $0.append(candidate.pid) }
                        let outcome = try export(candidate, of: collection, period: period, now: now, services: services, in: database)
                        services.metrics.increment("domicile_embedding_exports_total", labels: ["outcome": outcome.rawValue])
                        if outcome == .exported { pass.exported += 1 }
                    }
                }
                return pass
            }
        } catch {
            // Retractions the failed transaction made in memory (none took effect).
            try? await services.resynchronizeExports(of: touched.withLock { $0 })
            throw error
        }
        // Only now, with the charges and the copies committed, may a fresh search be answered from them.
        try await services.resynchronizeExports(of: touched.withLock { $0 })
        return pass
    }

    /// What is noised: for cosine, the direction at the clip norm (a cosine
    /// ignores the length, and a shorter vector would lose signal against
    /// the same noise — BENCHMARKS.md, "Federated search: utility"); for the
    /// other metrics, the vector as stored (clipped by the noise).
    static func exportable(_ vector: [Float], definition: CollectionDefinition, clipNorm: Double) throws -> [Float] {
        guard definition.metric == .cosine else { return vector }
        let direction = try definition.metric.prepare(vector, dimension: definition.dimension)
        return direction.map { Float(Double($0) * clipNorm) }
    }

    enum Outcome: String {
        case exported
        case overBudget = "over_budget"
        case uncovered
    }

    /// Exports one vector version, inside the pass's transaction: only while
    /// the subject's consent covers the collection's purpose now, and only
    /// if the subject's embedding budget for the period holds the charge.
    private static func export(_ candidate: EmbeddingExportRecords.Candidate, of collection: VectorCollections.Collection,
                               period: String, now: Timestamp, services: NodeServices, in database: Database) throws -> Outcome {
        let definition = collection.definition
        guard let settings = definition.export else { return .uncovered }
        let pid = candidate.pid
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        guard services.consentGate.coverage(of: definition.purpose, grants: grants, now: now).isCovered,
              let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database),
              let vector = try VectorRecords.vector(collection: definition.name, pid: pid, key: key, in: database) else {
            try EmbeddingExportRecords.recordUncovered(candidate, collection: definition.name, now: now, in: database)
            return .uncovered
        }
        let limits = services.configuration.limits
        let spent = try database.fetchOne("""
            SELECT coalesce(sum(epsilon), 0), coalesce(sum(delta), 0) FROM embedding_charges WHERE pid = ? AND period = ?
            """, [pid.rawValue, period]) { PrivacyLedger.Spend(epsilon: $0.double(0), delta: $0.double(1)) } ?? PrivacyLedger.Spend()
        guard spent.admits(epsilon: settings.epsilon, delta: settings.delta,
                           within: (limits.embeddingEpsilonPerPeriod, limits.embeddingDeltaPerPeriod)) else {
            try EmbeddingExportRecords.recordSkipped(candidate, collection: definition.name, period: period, now: now, in: database)
            return .overBudget
        }
        var random = services.random.generator()
        let noised = try EmbeddingNoise.noised(exportable(vector, definition: definition, clipNorm: settings.clipNorm),
                                               clipNorm: settings.clipNorm, epsilon: settings.epsilon, delta: settings.delta, using: &random)
        try database.execute("""
            INSERT INTO embedding_charges (pid, period, seq, collection, epsilon, delta, charged_at)
            VALUES (?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM embedding_charges WHERE pid = ? AND period = ?), ?, ?, ?, ?)
            """, [pid.rawValue, period, pid.rawValue, period, definition.name.rawValue, settings.epsilon, settings.delta, now.milliseconds])
        try EmbeddingExportRecords.recordExport(noised, of: candidate, collection: definition.name, settings: settings, key: key, now: now,
                                                using: &random, in: database)
        return .exported
    }
}
