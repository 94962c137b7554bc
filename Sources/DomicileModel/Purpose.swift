/// Why data is processed (`product_recs`, `analytics`, …). Every feature,
/// collection and aggregate names the purpose it serves; the residency
/// policy says which purposes exist and on which lawful basis per region.
public struct Purpose: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let lengthMax = Name.lengthMax
    public let rawValue: String

    /// 1-64 characters: lowercase letters, digits and `_`, starting with a letter.
    public init(_ rawValue: String) throws(ModelError) {
        guard Name.isValid(rawValue) else { throw .invalidName(what: "purpose") }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: Purpose, rhs: Purpose) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The lawful bases of processing (GDPR Article 6, as a CRM sees them).
public enum LawfulBasis: String, CaseIterable, Codable, Sendable {
    case consent
    case contract
    case legitimateInterest = "legitimate_interest"
    case legalObligation = "legal_obligation"
}

/// What kind of data a row or message is. Residency rules are written per
/// class. The first five never leave their home region: no transfer rule may
/// name them, and the federation wire format has no message that carries them.
public enum DataClass: String, CaseIterable, Codable, Sendable {
    case identity
    case consent
    case feature
    case embedding
    case audit
    case noisedEmbedding = "noised_embedding"
    case aggregate
    case erasureSignal = "erasure_signal"

    /// Classes that exist only on nodes of the subject's home region.
    public var isResident: Bool {
        switch self {
        case .identity, .consent, .feature, .embedding, .audit: return true
        case .noisedEmbedding, .aggregate, .erasureSignal: return false
        }
    }
}

/// An ISO 3166-1 alpha-2 country code, upper-case (`DE`).
public struct CountryCode: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) throws(ModelError) {
        let bytes = Array(rawValue.utf8)
        guard bytes.count == 2, bytes.allSatisfy(ASCII.isUppercaseLetter) else { throw .invalidName(what: "country code") }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: CountryCode, rhs: CountryCode) -> Bool { lhs.rawValue < rhs.rawValue }
}
