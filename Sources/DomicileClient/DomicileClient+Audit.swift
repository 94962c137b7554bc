/// One audit event: who did what to which pid, with what outcome; never an identifier or a value.
public struct AuditEvent: Decodable, Sendable, Hashable {
    public let seq: Int64
    public let at: String
    public let principal: String
    public let action: String
    public let pid: String?
    public let purpose: String?
    public let outcome: String
    public let requestID: String?
    public let detail: String?
    public let hash: String

    enum CodingKeys: String, CodingKey {
        case seq, at, principal, action, pid, purpose, outcome, requestID = "request_id", detail, hash
    }
}

/// A page of the audit log.
public struct AuditPage: Decodable, Sendable, Hashable {
    public let events: [AuditEvent]
    /// Pass as `after` for the next page; nil at the end.
    public let nextAfter: Int64?

    enum CodingKeys: String, CodingKey { case events, nextAfter = "next_after" }
}

/// `GET /v1/audit/verify`.
public struct AuditVerification: Decodable, Sendable, Hashable {
    public let valid: Bool
    public let length: Int64
    /// The chain's last hash, hex.
    public let head: String
    public let firstInvalidSeq: Int64?

    enum CodingKeys: String, CodingKey { case valid, length, head, firstInvalidSeq = "first_invalid_seq" }
}

extension DomicileClient {
    /// Events after `after` (a seq), at most `limit`. Privacy officer.
    public func audit(after: Int64 = 0, limit: Int = 100) async throws -> AuditPage {
        try await send(Call("GET", "/v1/audit?after=\(after)&limit=\(limit)"))
    }

    /// Checks the node's audit hash chain.
    public func verifyAudit() async throws -> AuditVerification {
        try await send(Call("GET", "/v1/audit/verify"))
    }
}
