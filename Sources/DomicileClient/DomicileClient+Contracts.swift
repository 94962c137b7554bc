/// An event contract: the fields an event may carry, how each is minimized,
/// and the feature it updates (API.md, "Event contracts").
public struct EventContract: Codable, Sendable, Hashable {
    public struct Field: Codable, Sendable, Hashable {
        /// `string`, `number`, `bool` or `timestamp`.
        public var type: String
        /// The feature it updates, if any.
        public var feature: String?
        /// `bucket_day`, `bucket_hour`, `ip_prefix`, `coarse_geo` or `drop`, applied before anything is stored.
        public var transform: String?
        /// Declared as identity: the one kind of field where PII is expected (API.md).
        public var identity: Bool?

        public init(type: String, feature: String? = nil, transform: String? = nil, identity: Bool? = nil) {
            self.type = type
            self.feature = feature
            self.transform = transform
            self.identity = identity
        }
    }

    /// Keyed by the event's field names, as they are (no case conversion).
    public var fields: [String: Field]

    public init(fields: [String: Field]) { self.fields = fields }
}

/// A stored contract, as `PUT /v1/contracts/{name}` and `GET /v1/contracts` answer.
public struct NamedEventContract: Decodable, Sendable, Hashable {
    public let name: String
    public let fields: [String: EventContract.Field]
}

extension DomicileClient {
    private struct Contracts: Decodable {
        let contracts: [NamedEventContract]
    }

    /// Defines (or redefines) an event contract. Admin.
    @discardableResult
    public func defineContract(_ name: String, _ contract: EventContract) async throws -> NamedEventContract {
        try await send(Call("PUT", "/v1/contracts/\(Self.escaped(name))").json(contract))
    }

    public func contracts() async throws -> [NamedEventContract] {
        try await send(Call("GET", "/v1/contracts"), as: Contracts.self).contracts
    }

    /// Sends an event about `pid` through `contract`: its fields are checked
    /// and minimized, then written as features. Returns the features updated.
    /// Refusals: `unknown_field` (with `fields`), `pii_detected`, `consent_required`.
    public func sendEvent(_ contract: String, pid: String, fields: [String: JSONValue]) async throws -> [String] {
        struct Body: Encodable {
            let pid: String
            let fields: [String: JSONValue]
        }
        struct Accepted: Decodable {
            let featuresUpdated: [String]
            enum CodingKeys: String, CodingKey { case featuresUpdated = "features_updated" }
        }
        // Each event is applied as it comes: a second copy would update the features again.
        return try await send(Call("POST", "/v1/events/\(Self.escaped(contract))", idempotent: false, region: Routing.region(ofPID: pid))
            .json(Body(pid: pid, fields: fields)), as: Accepted.self).featuresUpdated
    }
}
