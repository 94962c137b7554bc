import DomicileModel

/// A purpose the subject currently consents to, and the receipt that granted it.
public struct ActiveConsent: Sendable, Equatable {
    public let purpose: Purpose
    public let basis: LawfulBasis
    public let grantedAt: Timestamp
    public let expiresAt: Timestamp?
    public let receiptID: String

    public init(purpose: Purpose, basis: LawfulBasis, grantedAt: Timestamp, expiresAt: Timestamp?, receiptID: String) {
        self.purpose = purpose
        self.basis = basis
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
        self.receiptID = receiptID
    }
}

/// Folds a subject's receipts, oldest first, into the purposes active at
/// `now`. A grant sets its purposes (a later grant replaces an earlier one,
/// with its own expiry); a revoke removes them; a GPC signal removes every
/// purpose in `gpcPurposes`; an expired grant is not active. Purposes the
/// policy no longer knows are dropped: unknown means deny.
///
/// `apply` is the one step both the full fold and the node's materialized
/// view (`consent_active`, updated with each receipt) use; `inForce` is the
/// filter every read applies.
public enum ConsentFolding {
    public static func active(_ receipts: [ConsentReceipt], gpcPurposes: Set<Purpose>, knownPurposes: Set<Purpose>,
                              now: Timestamp) -> [Purpose: ActiveConsent] {
        var active: [Purpose: ActiveConsent] = [:]
        for receipt in receipts { apply(receipt, to: &active, gpcPurposes: gpcPurposes) }
        return inForce(active, knownPurposes: knownPurposes, now: now)
    }

    /// The effect of one receipt on the grants before it.
    public static func apply(_ receipt: ConsentReceipt, to active: inout [Purpose: ActiveConsent], gpcPurposes: Set<Purpose>) {
        guard !receipt.redacted else { return }
        switch receipt.action {
        case .grant:
            for purpose in receipt.purposes {
                active[purpose] = ActiveConsent(purpose: purpose, basis: receipt.basis ?? .consent, grantedAt: receipt.collectedAt,
                                                expiresAt: receipt.expiresAt, receiptID: receipt.receiptID)
            }
        case .revoke:
            for purpose in receipt.purposes { active[purpose] = nil }
        case .gpc:
            for purpose in gpcPurposes { active[purpose] = nil }
        }
    }

    /// The grants that count at `now`: unexpired, for purposes the policy knows.
    public static func inForce(_ active: [Purpose: ActiveConsent], knownPurposes: Set<Purpose>, now: Timestamp) -> [Purpose: ActiveConsent] {
        active.filter { purpose, consent in
            knownPurposes.contains(purpose) && (consent.expiresAt.map { now < $0 } ?? true)
        }
    }
}
