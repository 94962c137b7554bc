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
