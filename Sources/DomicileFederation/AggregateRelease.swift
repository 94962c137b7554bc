import DomicileModel

/// A released aggregate as the federation carries it: only the noised
/// numbers and how they were made (the fields of the node's
/// `aggregate_releases` row), with the policy version it was released under.
public struct AggregateRelease: Sendable, Equatable {
    /// One value, or one per declared category (a histogram).
    public enum Result: Sendable, Equatable {
        case value(Double)
        case values([Category])
    }

    public struct Category: Sendable, Equatable {
        public let label: String
        public let value: Double

        public init(label: String, value: Double) {
            self.label = label
            self.value = value
        }
    }

    /// At most as many categories as a histogram may declare (AggregateService).
    public static let categoriesMax = 1_000
    /// A category label: 1-64 bytes of UTF-8 without control characters.
    public static let labelBytesMax = 64

    /// `rl_` and 24 hexadecimal digits.
    public let releaseID: String
    public let name: Name
    public let region: RegionID
    /// `count`, `sum`, `mean` or `histogram` (a name, so later kinds fit).
    public let kind: Name
    public let dataset: Name
    public let result: Result
    /// `laplace` or `gaussian` (a name, so later mechanisms fit).
    public let mechanism: Name
    public let epsilon: Double
    public let delta: Double
    /// The noise's standard deviation σ (the global view adds variances).
    public let noiseScale: Double
    public let releasedAt: Timestamp
    public let policyVersion: Int64

    /// Refuses what a release never holds: an id that is not a release id,
    /// non-finite or out-of-range numbers, too many or malformed categories.
    public init(releaseID: String, name: Name, region: RegionID, kind: Name, dataset: Name, result: Result, mechanism: Name,
                epsilon: Double, delta: Double, noiseScale: Double, releasedAt: Timestamp,
                policyVersion: Int64) throws(FederationError) {
        guard MintedID.isValid(releaseID, kind: .release) else { throw .invalidRecord("release id") }
        guard epsilon.isFinite, epsilon > 0 else { throw .invalidRecord("epsilon") }
        guard delta.isFinite, delta >= 0, delta < 1 else { throw .invalidRecord("delta") }
        guard noiseScale.isFinite, noiseScale >= 0 else { throw .invalidRecord("noise scale") }
        switch result {
        case .value(let value):
            guard value.isFinite else { throw .invalidRecord("value") }
        case .values(let categories):
            guard (1...Self.categoriesMax).contains(categories.count) else { throw .invalidRecord("categories") }
            var labels = Set<String>()
            for category in categories {
                guard Self.isValidLabel(category.label), labels.insert(category.label).inserted else { throw .invalidRecord("category label") }
                guard category.value.isFinite else { throw .invalidRecord("category value") }
            }
        }
        self.releaseID = releaseID
        self.name = name
        self.region = region
        self.kind = kind
        self.dataset = dataset
        self.result = result
        self.mechanism = mechanism
        self.epsilon = epsilon
        self.delta = delta
        self.noiseScale = noiseScale
        self.releasedAt = releasedAt
        self.policyVersion = policyVersion
    }

    static func isValidLabel(_ label: String) -> Bool {
        let bytes = label.utf8
        return (1...labelBytesMax).contains(bytes.count) && bytes.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }
}

/// The ids a node mints (`IDKind`): its prefix, `_`, 24 lowercase hexadecimal
/// digits. Nothing else fits, so no identifier can pass for one.
enum MintedID {
    static func isValid(_ text: String, kind: IDKind) -> Bool {
        let bytes = Array(text.utf8)
        let prefix = Array(kind.rawValue.utf8) + [UInt8(ascii: "_")]
        guard bytes.count == prefix.count + 2 * IDKind.randomByteCount, bytes.starts(with: prefix) else { return false }
        return bytes[prefix.count...].allSatisfy { ASCII.isDigit($0) || (0x61...0x66).contains($0) }
    }
}
