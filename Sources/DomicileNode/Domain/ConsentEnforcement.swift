import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// Invariant 2 on the write side: when consent for a purpose goes (revoke,
/// GPC, expiry), the subject's data for that purpose goes with it, in the
/// same transaction as the receipt (or the sweep) that ended it. Purposes
/// the policy covers on another basis keep their data.
enum ConsentEnforcement {
    /// What was removed, per kind of data.
    struct Removed: Sendable, Equatable {
        var features = 0
        var vectors = 0

        var isEmpty: Bool { features == 0 && vectors == 0 }
        var auditDetail: String { "purged_features=\(features),purged_vectors=\(vectors)" }

        static func += (total: inout Removed, more: Removed) {
            total.features += more.features
            total.vectors += more.vectors
        }
    }

    /// Removes the subject's features and vectors of the purposes whose
    /// consent ended; its vectors leave the in-memory indexes before the
    /// transaction commits.
    static func withdraw(_ purposes: Set<Purpose>, of pid: PID, now: Timestamp, services: NodeServices, in database: Database) throws -> Removed {
        let consentBased = purposes.filter(services.consentGate.needsConsent)
        guard !consentBased.isEmpty else { return Removed() }
        let collections = try VectorRecords.purge(pid, purposes: consentBased, now: now, in: database)
        services.vectors.remove(pid, from: collections)
        return Removed(features: try FeatureRecords.purge(pid, purposes: consentBased, in: database), vectors: collections.count)
    }

    /// After a receipt: the subject's vectors are eligible for search as
    /// long as its grants (or the policy) now say.
    static func refreshEligibility(of pid: PID, services: NodeServices, in database: Database) throws {
        guard !services.vectors.collections(for: nil).isEmpty else { return }  // no index to refresh: spare the query
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        services.vectors.refreshEligibility(of: pid) { purpose in
            services.consentGate.eligibleUntil(purpose, grants: grants)
        }
    }

    /// Ends up to `limit` grants that have expired by `now`: removes their
    /// data and their row in `consent_active`. Returns the grants ended and
    /// what was removed.
    static func endExpiredGrants(now: Timestamp, limit: Int, services: NodeServices,
                                 in database: Database) throws -> (grants: Int, removed: Removed) {
        let expired = try database.fetchAll("""
            SELECT pid, purpose FROM consent_active WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?
            """, [now.milliseconds, limit]) { row in (row.text(0), row.text(1)) }
        var removed = Removed()
        for (pidText, purposeText) in expired {
            if let pid = try? PID(parsing: pidText), let purpose = try? Purpose(purposeText) {
                removed += try withdraw([purpose], of: pid, now: now, services: services, in: database)
            }
            try database.execute("DELETE FROM consent_active WHERE pid = ? AND purpose = ?", [pidText, purposeText])
        }
        return (expired.count, removed)
    }
}
