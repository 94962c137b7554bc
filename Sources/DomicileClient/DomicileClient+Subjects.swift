/// How a subject is known outside Domicile (API.md, "Subjects and identity").
public struct SubjectIdentifier: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable {
        /// Trimmed and lower-cased by the node; must look like an address.
        case email
        /// E.164.
        case phone
        /// Opaque, 1–128 bytes.
        case customerID = "customer_id"
    }

    public let kind: Kind
    public let value: String

    public init(kind: Kind, value: String) {
        self.kind = kind
        self.value = value
    }

    public static func email(_ value: String) -> SubjectIdentifier { SubjectIdentifier(kind: .email, value: value) }
    public static func phone(_ value: String) -> SubjectIdentifier { SubjectIdentifier(kind: .phone, value: value) }
    public static func customerID(_ value: String) -> SubjectIdentifier { SubjectIdentifier(kind: .customerID, value: value) }
}

/// Where a new subject lives: named, or derived from a country by the residency policy.
public enum HomeRegion: Sendable, Hashable {
    /// An ISO 3166-1 alpha-2 country (`DE`).
    case country(String)
    /// A region of the policy (`eu`).
    case region(String)
}

/// `POST /v1/subjects`.
public struct Registration: Decodable, Sendable, Hashable {
    public let pid: String
    public let region: String
    /// False when the identifier was already registered (the call is idempotent).
    public let created: Bool
}

/// `GET /v1/subjects/{pid}`.
public struct Subject: Decodable, Sendable, Hashable {
    public let pid: String
    public let region: String
    public let createdAt: String
    public let activePurposes: [String]

    enum CodingKeys: String, CodingKey {
        case pid, region, createdAt = "created_at", activePurposes = "active_purposes"
    }
}

extension DomicileClient {
    private struct RegisterBody: Encodable {
        let identifier: SubjectIdentifier
        let country: String?
        let region: String?
    }

    private struct LookupBody: Encodable {
        let identifier: SubjectIdentifier
    }

    private struct Found: Decodable {
        let pid: String
    }

    /// Registers a subject, or finds it if already registered. Sent to any
    /// node; a node outside the home region answers 421 and the call
    /// follows it to the home region's nodes.
    public func register(_ identifier: SubjectIdentifier, home: HomeRegion) async throws -> Registration {
        let body: RegisterBody
        var region: String?
        switch home {
        case .country(let country): body = RegisterBody(identifier: identifier, country: country, region: nil)
        case .region(let name):
            body = RegisterBody(identifier: identifier, country: nil, region: name)
            region = name
        }
        // Registering twice finds the first: sending it again is harmless.
        return try await send(Call("POST", "/v1/subjects", idempotent: true, region: region).json(body))
    }

    /// The pid of a registered identifier; `DomicileProblem` `unknown_subject` if none. Creates nothing.
    public func lookup(_ identifier: SubjectIdentifier) async throws -> String {
        try await send(Call("POST", "/v1/subjects/lookup", idempotent: true).json(LookupBody(identifier: identifier)), as: Found.self).pid
    }

    /// A subject's home region, creation time and active purposes.
    public func subject(_ pid: String) async throws -> Subject {
        try await send(Call("GET", "/v1/subjects/\(Self.escaped(pid))", region: Routing.region(ofPID: pid)))
    }
}
