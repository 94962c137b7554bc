import DomicileModel

/// Why processing for a purpose is lawful for one subject right now, if it is.
public enum Coverage: Sendable, Equatable {
    /// The policy gives this purpose a basis other than consent in this region.
    case basis(LawfulBasis)
    /// The subject's grant in force (its receipt is the lineage of what is written).
    case consent(ActiveConsent)
    /// Neither: nothing may be written, served or searched for this purpose.
    case none

    public var isCovered: Bool { self != .none }

    /// The receipt a value written now is linked to; nil under a non-consent basis.
    public var receiptID: String? {
        if case .consent(let grant) = self { return grant.receiptID }
        return nil
    }

    public var basis: LawfulBasis? {
        switch self {
        case .basis(let basis): return basis
        case .consent(let grant): return grant.basis
        case .none: return nil
        }
    }
}

extension ConsentFolding {
    /// Whether `purpose` may be processed for a subject with these grants at
    /// `now`. `policyBasis` is the policy's basis for the purpose in this
    /// region (nil: not allowed here, so never covered). A non-consent basis
    /// covers every subject; otherwise only an unexpired grant does.
    public static func coverage(of purpose: Purpose, grants: [Purpose: ActiveConsent], policyBasis: LawfulBasis?,
                                now: Timestamp) -> Coverage {
        guard let policyBasis else { return .none }
        if policyBasis != .consent { return .basis(policyBasis) }
        guard let grant = grants[purpose], grant.expiresAt.map({ now < $0 }) ?? true else { return .none }
        return .consent(grant)
    }
}
