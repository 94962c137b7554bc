import DomicileModel

/// What a feature is: its type, the purpose it serves, how long a value
/// lives, and how the data is classified.
public struct FeatureDefinition: Sendable, Equatable {
    public let name: Name
    public let type: FeatureType
    public let purpose: Purpose
    /// A value is served for this long after it was written, then deleted.
    public let ttlSeconds: Int64
    /// A label for the data (`behavioral`, `transactional`, …), same syntax as names.
    public let classification: Name

    /// Ten years: a value that must live longer is not a personalization feature.
    public static let ttlSecondsMax: Int64 = 10 * 366 * 86_400

    public init(name: Name, type: FeatureType, purpose: Purpose, ttlSeconds: Int64, classification: Name) {
        self.name = name
        self.type = type
        self.purpose = purpose
        self.ttlSeconds = ttlSeconds
        self.classification = classification
    }

    /// When a value written at `time` stops being served.
    public func expiry(writtenAt time: Timestamp) -> Timestamp { time.adding(seconds: ttlSeconds) }
}

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
