/// An erasure request's state (API.md, "Erasure").
public struct ErasureStatus: Decodable, Sendable, Equatable {
    /// Where one expected region stands.
    public struct RegionState: Decodable, Sendable, Hashable {
        /// `erased`, `pending` or `failed`.
        public let state: String
        public let lastContact: String?
        /// Why not erased yet: `confirming`, `awaiting_ack`, `unreachable`.
        public let code: String?

        enum CodingKeys: String, CodingKey { case state, lastContact = "last_contact", code }
    }

    public let erasureID: String
    /// `pending`, `complete` or `overdue`.
    public let status: String
    public let requestedAt: String?
    public let requestedBy: String?
    public let originRegion: String?
    public let jurisdiction: String?
    public let dueAt: String?
    public let completedAt: String?
    /// Region → `erased` or `pending`.
    public let regions: [String: String]
    public let regionStatus: [String: RegionState]?
    public let waitingFor: [String]?
    /// When complete: one signed ack per expected region.
    public let certificate: ErasureCertificate?

    public var isComplete: Bool { status == "complete" }

    enum CodingKeys: String, CodingKey {
        case erasureID = "erasure_id", status, requestedAt = "requested_at", requestedBy = "requested_by", originRegion = "origin_region"
        case jurisdiction, dueAt = "due_at", completedAt = "completed_at", regions, regionStatus = "region_status"
        case waitingFor = "waiting_for", certificate
    }
}

/// An erasure certificate: the signed request, and a signed ack per
/// expected region. `document` is the certificate as the node sent it, for
/// `domicile erasure verify FILE --trust KEYS` (its signatures cover the
/// members, not the JSON text, so re-encoding it is harmless).
public struct ErasureCertificate: Decodable, Sendable, Equatable {
    public struct Ack: Decodable, Sendable, Hashable {
        public let region: String
        public let node: String
        public let erasedAt: String
        /// What was erased, by kind (`subjects`, `features`, …).
        public let counts: [String: Int64]
        public let linkHash: String?
        public let walTruncated: Bool?
        public let policyVersion: Int64?
        public let signature: String
        public let publicKey: String

        enum CodingKeys: String, CodingKey {
            case region, node, erasedAt = "erased_at", counts, linkHash = "link_hash", walTruncated = "wal_truncated"
            case policyVersion = "policy_version", signature, publicKey = "public_key"
        }
    }

    public let erasureID: String
    public let requestedAt: String
    public let expectedRegions: [String]
    public let requestSignature: String
    public let completedAt: String?
    public let acks: [Ack]
    public let document: JSONValue

    enum CodingKeys: String, CodingKey {
        case erasureID = "erasure_id", requestedAt = "requested_at", expectedRegions = "expected_regions"
        case requestSignature = "request_signature", completedAt = "completed_at", acks
    }

    public init(from decoder: any Decoder) throws {
        document = try JSONValue(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        erasureID = try container.decode(String.self, forKey: .erasureID)
        requestedAt = try container.decode(String.self, forKey: .requestedAt)
        expectedRegions = try container.decode([String].self, forKey: .expectedRegions)
        requestSignature = try container.decode(String.self, forKey: .requestSignature)
        completedAt = try container.decodeIfPresent(String.self, forKey: .completedAt)
        acks = try container.decode([Ack].self, forKey: .acks)
    }
}

extension DomicileClient {
    private struct ErasureBody: Encodable {
        let pid: String?
        let identifier: SubjectIdentifier?
        let jurisdiction: String?
    }

    private struct ErasureList: Decodable {
        let erasures: [ErasureStatus]
    }

    /// Requests the erasure of a subject by pid, everywhere. Any node of any
    /// region takes it. `jurisdiction`: `gdpr` or `cpra`.
    public func requestErasure(pid: String, jurisdiction: String? = nil) async throws -> ErasureStatus {
        try await send(Call("POST", "/v1/erasures", idempotent: false).json(ErasureBody(pid: pid, identifier: nil, jurisdiction: jurisdiction)))
    }

    /// Requests the erasure of whoever holds `identifier`, everywhere.
    public func requestErasure(identifier: SubjectIdentifier, jurisdiction: String? = nil) async throws -> ErasureStatus {
        try await send(Call("POST", "/v1/erasures", idempotent: false)
            .json(ErasureBody(pid: nil, identifier: identifier, jurisdiction: jurisdiction)))
    }

    /// A request's state; with its certificate once complete. `unknown_erasure` if this node has no such request.
    public func erasure(_ id: String) async throws -> ErasureStatus {
        try await send(Call("GET", "/v1/erasures/\(Self.escaped(id))"))
    }

    /// Requests by status (`pending`, `complete`, `overdue`), or all.
    public func erasures(status: String? = nil) async throws -> [ErasureStatus] {
        let query = status.map { "?status=\(Self.escaped($0))" } ?? ""
        return try await send(Call("GET", "/v1/erasures" + query), as: ErasureList.self).erasures
    }
}
