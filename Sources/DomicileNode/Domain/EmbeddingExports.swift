import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Noised embeddings for export (the federation's cross-region search uses
/// them): only from collections with export settings, only for subjects
/// whose consent covers the collection's purpose now, and only while the
/// subject's embedding budget for the period holds the charge. The charge
/// is recorded in the caller's transaction, before the noised vector is
/// handed back; over budget nothing is noised and the vector stays local.
enum EmbeddingExports {
    static func export(_ collection: Name, pid: PID, services: NodeServices, now: Timestamp,
                       in database: Database) throws -> EmbeddingNoise.Noised {
        guard let definition = services.vectors.collection(collection)?.definition else {
            throw DomainError(.notFound, code: "unknown_collection", detail: "no collection with this name")
        }
        guard let export = definition.export else {
            throw DomainError(.refused, code: "export_not_allowed", detail: "collection \(collection) has no export settings; its vectors stay in the region")
        }
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        guard services.consentGate.coverage(of: definition.purpose, grants: grants, now: now).isCovered,
              let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database),
              let vector = try VectorRecords.vector(collection: collection, pid: pid, key: key, in: database) else {
            throw DomainError(.notFound, code: "unknown_vector", detail: "no vector this subject's consent lets leave the region")
        }
        let limits = services.configuration.limits
        let period = limits.privacyPeriod.key(at: now)
        let spent = try database.fetchOne("""
            SELECT coalesce(sum(epsilon), 0), coalesce(sum(delta), 0) FROM embedding_charges WHERE pid = ? AND period = ?
            """, [pid.rawValue, period]) { PrivacyLedger.Spend(epsilon: $0.double(0), delta: $0.double(1)) } ?? PrivacyLedger.Spend()
        guard spent.admits(epsilon: export.epsilon, delta: export.delta,
                           within: (limits.embeddingEpsilonPerPeriod, limits.embeddingDeltaPerPeriod)) else {
            throw DomainError(.refused, code: "budget_exhausted",
                            detail: "this subject's embedding budget for the \(limits.privacyPeriod.rawValue) is spent; the vector stays local")
        }
        var random = services.random.generator()
        let noised: EmbeddingNoise.Noised
        do {
            noised = try EmbeddingNoise.noised(vector, clipNorm: export.clipNorm, epsilon: export.epsilon, delta: export.delta, using: &random)
        } catch {
            throw DomainError(.invalid, code: "invalid_request", detail: "export settings: \(error.description)")
        }
        try database.execute("""
            INSERT INTO embedding_charges (pid, period, seq, collection, epsilon, delta, charged_at)
            VALUES (?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM embedding_charges WHERE pid = ? AND period = ?), ?, ?, ?, ?)
            """, [pid.rawValue, period, pid.rawValue, period, collection.rawValue, export.epsilon, export.delta, now.milliseconds])
        return noised
    }
}
