import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// The one consent check (DESIGN.md invariant 2): may this subject's data
/// be processed for `purpose` now? Yes when the policy gives the purpose a
/// basis other than consent in this region, or when the subject holds an
/// unexpired grant for it; never when the policy does not allow the purpose
/// here. Every path asks the gate: feature writes and reads, event
/// ingestion, vector writes and search eligibility, exports, the
/// enforcement that purges withdrawn data, and aggregate scans, which use
/// `sqlFilter`, the same rule in SQL (a test checks they agree on
/// randomized histories).
struct ConsentGate: Sendable {
    /// Why a write the gate let through is lawful: the basis, and under
    /// consent the receipt of the grant (the lineage of what is written).
    struct Grounds: Sendable, Equatable {
        let basis: LawfulBasis
        let receiptID: String?
    }

    let policy: ResidencyPolicy
    let region: RegionID

    /// Why `purpose` is covered for a subject with these grants at `now`, if it is.
    func coverage(of purpose: Purpose, grants: [Purpose: ActiveConsent], now: Timestamp) -> Coverage {
        ConsentFolding.coverage(of: purpose, grants: grants, policyBasis: policy.basis(for: purpose, in: region), now: now)
    }

    /// The grounds for each of `purposes`, or 403 `consent_required`
    /// naming those not covered (nothing may then be stored).
    func requireCoverage(of purposes: Set<Purpose>, grants: [Purpose: ActiveConsent],
                         now: Timestamp) throws(DomainError) -> [Purpose: Grounds] {
        var grounds: [Purpose: Grounds] = [:]
        var uncovered: [String] = []
        for purpose in purposes {
            switch coverage(of: purpose, grants: grants, now: now) {
            case .basis(let basis): grounds[purpose] = Grounds(basis: basis, receiptID: nil)
            case .consent(let grant): grounds[purpose] = Grounds(basis: grant.basis, receiptID: grant.receiptID)
            case .none: uncovered.append(purpose.rawValue)
            }
        }
        guard uncovered.isEmpty else { throw DomainError.consentRequired(uncovered.sorted()) }
        return grounds
    }

    /// The grounds for one purpose, or 403 `consent_required`.
    func requireCoverage(of purpose: Purpose, grants: [Purpose: ActiveConsent], now: Timestamp) throws(DomainError) -> Grounds {
        try requireCoverage(of: [purpose], grants: grants, now: now)[purpose]!
    }

    /// Whether `purpose` needs a subject's consent here (its data goes when the consent does).
    func needsConsent(_ purpose: Purpose) -> Bool { !policy.isCoveredWithoutConsent(purpose, in: region) }

    /// Until when (milliseconds since the epoch) a subject's data may serve
    /// `purpose`: forever under a non-consent basis of the policy; under
    /// consent, until its grant expires (`grant`: the grant's expiry, `.max`
    /// without one; nil when there is no grant). `Int64.min`: not at all.
    /// The vector indexes hold this deadline, so a search filters by it
    /// without asking the gate per hit.
    func eligibleUntil(_ purpose: Purpose, grant: Int64?) -> Int64 {
        guard let basis = policy.basis(for: purpose, in: region) else { return .min }
        if basis != .consent { return .max }
        return grant ?? .min
    }

    /// The same, from a subject's grants.
    func eligibleUntil(_ purpose: Purpose, grants: [Purpose: ActiveConsent]) -> Int64 {
        eligibleUntil(purpose, grant: grants[purpose].map { $0.expiresAt?.milliseconds ?? .max })
    }

    /// The gate as an SQL condition on the subject column `pid` (e.g.
    /// `s.pid`), for scans over many subjects: the rows of `consent_active`
    /// are the grants `coverage` reads.
    func sqlFilter(_ purpose: Purpose, pid column: String, now: Timestamp) -> (sql: String, arguments: [any DatabaseValueConvertible]) {
        switch policy.basis(for: purpose, in: region) {
        case nil:
            return ("0", [])
        case .consent?:
            return ("""
                EXISTS (SELECT 1 FROM consent_active a WHERE a.pid = \(column) AND a.purpose = ? AND (a.expires_at IS NULL OR a.expires_at > ?))
                """, [purpose.rawValue, now.milliseconds])
        case _?:
            return ("1", [])
        }
    }
}
