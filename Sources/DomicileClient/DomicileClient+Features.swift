/// A feature's value: what a definition's `type` allows.
public enum FeatureValue: Codable, Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral, ExpressibleByFloatLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case number(Double)
    case string(String)
    case bool(Bool)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }

    /// The value as text: a string as it is, a whole number without a fraction.
    public var description: String {
        switch self {
        case .number(let number) where number.rounded() == number && abs(number) < 1e15: return String(Int64(number))
        case .number(let number): return "\(number)"
        case .string(let text): return text
        case .bool(let flag): return "\(flag)"
        }
    }

    public init(from decoder: any Decoder) throws {
        switch try JSONValue(from: decoder) {
        case .number(let number): self = .number(number)
        case .string(let text): self = .string(text)
        case .bool(let flag): self = .bool(flag)
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a feature value is a number, a string or a bool"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .bool(let flag): try container.encode(flag)
        }
    }
}

/// `PUT /v1/feature-definitions/{name}` and what `GET /v1/feature-definitions` lists.
public struct FeatureDefinition: Codable, Sendable, Hashable {
    public enum ValueType: String, Codable, Sendable { case number, string, bool }

    public var name: String
    public var type: ValueType
    /// A feature is written and served only under consent to this purpose.
    public var purpose: String
    /// Past this age a value is withheld (`expired`).
    public var ttlSeconds: Int64
    /// A label such as `behavioral`.
    public var classification: String

    enum CodingKeys: String, CodingKey { case name, type, purpose, ttlSeconds = "ttl_seconds", classification }

    public init(name: String, type: ValueType, purpose: String, ttlSeconds: Int64, classification: String = "behavioral") {
        self.name = name
        self.type = type
        self.purpose = purpose
        self.ttlSeconds = ttlSeconds
        self.classification = classification
    }
}

/// `PUT /v1/subjects/{pid}/features`.
public struct FeaturesWritten: Decodable, Sendable, Hashable {
    public let pid: String
    public let written: [String]
}

/// `GET /v1/subjects/{pid}/features?purpose=P`: the values served, and
/// those of the purpose withheld, with why (`no_consent`, `expired`).
public struct ServedFeatures: Decodable, Sendable, Hashable {
    public struct Withheld: Decodable, Sendable, Hashable {
        public let name: String
        public let reason: String
    }

    public let pid: String
    public let purpose: String
    public let features: [String: FeatureValue]
    public let withheld: [Withheld]
}

extension DomicileClient {
    private struct Definitions: Decodable {
        let definitions: [FeatureDefinition]
    }

    /// Defines (or redefines) a feature. Admin.
    @discardableResult
    public func defineFeature(_ definition: FeatureDefinition) async throws -> FeatureDefinition {
        try await send(Call("PUT", "/v1/feature-definitions/\(Self.escaped(definition.name))").json(definition))
    }

    public func featureDefinitions() async throws -> [FeatureDefinition] {
        try await send(Call("GET", "/v1/feature-definitions"), as: Definitions.self).definitions
    }

    /// Writes values, all or nothing: `consent_required` if the subject's
    /// consent does not cover a feature's purpose, and nothing is stored.
    @discardableResult
    public func writeFeatures(_ values: [String: FeatureValue], for pid: String) async throws -> FeaturesWritten {
        struct Body: Encodable { let values: [String: FeatureValue] }
        return try await send(Call("PUT", "/v1/subjects/\(Self.escaped(pid))/features", region: Routing.region(ofPID: pid))
            .json(Body(values: values)))
    }

    /// The subject's features of `purpose` that its consent covers and that are within their TTL.
    public func features(of pid: String, purpose: String) async throws -> ServedFeatures {
        try await send(Call("GET", "/v1/subjects/\(Self.escaped(pid))/features?purpose=\(Self.escaped(purpose))",
                            region: Routing.region(ofPID: pid)))
    }
}
