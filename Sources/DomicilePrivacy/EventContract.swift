import DomicileModel

/// An event contract: the allowlist of an event's fields, their types, the
/// transform that minimizes each before storage, and the feature it feeds.
/// Anything not on the list is refused, not ignored, so a producer that
/// starts sending a new field finds out at once.
public struct EventContract: Sendable, Equatable {
    public enum FieldType: String, Sendable, CaseIterable {
        case string, number, bool, timestamp
    }

    public struct Field: Sendable, Equatable {
        public let type: FieldType
        /// The feature the (minimized) value is stored as; nil only for `drop`.
        public let feature: Name?
        public let transform: Transform?
        /// Declared to carry an identifier: exempt from the PII check, and
        /// therefore never stored (it must be dropped).
        public let identity: Bool

        public init(type: FieldType, feature: Name?, transform: Transform?, identity: Bool = false) {
            self.type = type
            self.feature = feature
            self.transform = transform
            self.identity = identity
        }

        /// The type of the value stored for this field.
        public var storedType: FeatureType {
            switch type {
            case .string, .timestamp: return .string
            case .number: return .number
            case .bool: return .bool
            }
        }
    }

    /// A contract that cannot be used: which field, and what rule it breaks.
    public struct Invalid: Error, Equatable, Sendable {
        public let field: String
        public let reason: String
    }

    /// A value as an event carries it.
    public enum Value: Sendable, Equatable {
        case null
        case string(String)
        case number(Double)
        case bool(Bool)
        /// An array or an object: no field type accepts one.
        case structured
    }

    /// Why an event was refused. Field names only, never values.
    public enum Rejection: Error, Equatable, Sendable {
        case unknownFields(named: [String], unnamed: Int)
        case typeMismatch(field: String, expected: FieldType)
        case piiDetected(field: String, kind: PIIClassifier.Kind)
        case invalidValue(field: String, reason: String)
    }

    /// One minimized value, ready to be stored as a feature.
    public struct Update: Sendable, Equatable {
        public let field: String
        public let feature: Name
        public let value: FeatureValue
    }

    public static let fieldCountMax = 256

    public let fields: [String: Field]

    /// Validates a contract: field names, transforms that fit their field's
    /// type, every kept field mapped to a feature, no feature fed twice.
    public init(fields: [String: Field]) throws(Invalid) {
        guard (1...Self.fieldCountMax).contains(fields.count) else {
            throw Invalid(field: "fields", reason: "declare 1 to \(Self.fieldCountMax) fields")
        }
        var fed: Set<Name> = []
        for (name, field) in fields.sorted(by: { $0.key < $1.key }) {
            let path = "fields.\(Self.isFieldName(name) ? name : "?")"
            guard Self.isFieldName(name) else {
                throw Invalid(field: "fields", reason: "field names are 1-64 letters, digits, '_', '-' or '.', starting with a letter")
            }
            if let transform = field.transform {
                switch transform {
                case .bucketDay, .bucketHour:
                    guard field.type == .timestamp else { throw Invalid(field: "\(path).transform", reason: "\(transform.rawValue) needs type timestamp") }
                case .ipPrefix, .coarseGeo:
                    guard field.type == .string else { throw Invalid(field: "\(path).transform", reason: "\(transform.rawValue) needs type string") }
                case .drop:
                    break
                }
            }
            if field.transform == .drop {
                guard field.feature == nil else { throw Invalid(field: "\(path).feature", reason: "a dropped field feeds no feature") }
            } else {
                guard !field.identity else { throw Invalid(field: "\(path).identity", reason: "an identity field must be dropped (transform drop)") }
                guard let feature = field.feature else {
                    throw Invalid(field: "\(path).feature", reason: "name the feature this field feeds, or drop it")
                }
                guard fed.insert(feature).inserted else { throw Invalid(field: "\(path).feature", reason: "another field already feeds \(feature)") }
            }
        }
        self.fields = fields
    }

    /// The features this contract writes.
    public var features: [Name: Field] {
        var result: [Name: Field] = [:]
        for field in fields.values { if let feature = field.feature { result[feature] = field } }
        return result
    }

    /// Checks an event against the contract and minimizes it: unknown fields
    /// first (all of them, by name), then each field's type, the PII check
    /// (identity fields aside) and its transform. Absent and null fields are
    /// left alone. Nothing of the raw values survives but the minimized ones.
    public func minimize(_ values: [String: Value]) throws(Rejection) -> [Update] {
        let unknown = values.keys.filter { fields[$0] == nil }
        if !unknown.isEmpty {
            // A field name is echoed only if it is a plausible name and not itself an identifier.
            let named = unknown.filter { Self.isFieldName($0) && PIIClassifier.classify($0) == nil }.sorted()
            throw .unknownFields(named: named, unnamed: unknown.count - named.count)
        }
        var updates: [Update] = []
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            let field = fields[name]!
            if value == .null { continue }
            let minimized = try Self.minimize(value, field: field, name: name)
            if let feature = field.feature, let minimized { updates.append(Update(field: name, feature: feature, value: minimized)) }
        }
        return updates
    }

    private static func minimize(_ value: Value, field: Field, name: String) throws(Rejection) -> FeatureValue? {
        switch (field.type, value) {
        case (.number, .number(let number)):
            guard number.isFinite else { throw .invalidValue(field: name, reason: "must be a finite number") }
            return field.transform == .drop ? nil : .number(number)
        case (.bool, .bool(let flag)):
            return field.transform == .drop ? nil : .bool(flag)
        case (.string, .string(let text)), (.timestamp, .string(let text)):
            if !field.identity, let kind = PIIClassifier.classify(text) { throw .piiDetected(field: name, kind: kind) }
            guard text.utf8.count <= FeatureValue.stringBytesMax else {
                throw .invalidValue(field: name, reason: "longer than \(FeatureValue.stringBytesMax) bytes")
            }
            if field.type == .timestamp {
                guard let timestamp = try? Timestamp(rfc3339: text) else { throw .invalidValue(field: name, reason: "must be an RFC 3339 timestamp") }
                guard let transform = field.transform else { return .string(timestamp.rfc3339) }
                return try apply(transform, to: text, field: name)
            }
            guard let transform = field.transform else { return .string(text) }
            return try apply(transform, to: text, field: name)
        default:
            throw .typeMismatch(field: name, expected: field.type)
        }
    }

    private static func apply(_ transform: Transform, to text: String, field: String) throws(Rejection) -> FeatureValue? {
        do {
            return try transform.apply(to: text).map(FeatureValue.string)
        } catch {
            switch error {
            case .notATimestamp: throw .invalidValue(field: field, reason: "must be an RFC 3339 timestamp")
            case .notAnIPAddress: throw .invalidValue(field: field, reason: "must be an IPv4 or IPv6 address")
            case .notALocation: throw .invalidValue(field: field, reason: "must start with an ISO 3166-1 country code")
            }
        }
    }

    /// 1-64 letters, digits, `_`, `-` or `.`, starting with a letter.
    public static func isFieldName(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (1...64).contains(bytes.count), let first = bytes.first, ASCII.isLetter(first) else { return false }
        return bytes.allSatisfy { ASCII.isLetter($0) || ASCII.isDigit($0) || "_-.".utf8.contains($0) }
    }
}
