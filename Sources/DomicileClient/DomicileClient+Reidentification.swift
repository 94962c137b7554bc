/// A re-identification request: two other privacy officers approve, then
/// its requester fetches the identifiers exactly once (API.md, "Re-identification").
public struct Reidentification: Decodable, Sendable, Hashable {
    public let id: String
    public let pid: String
    /// `pending_approval`, `approved` or `fulfilled`.
    public let status: String
    public let requester: String?
    public let approvals: [String]?
    /// Only in the first fetch after approval.
    public let identifiers: [SubjectIdentifier]?
}

extension DomicileClient {
    /// Asks to see who `pid` is, for `reason` under `ticket`.
    public func requestReidentification(pid: String, reason: String, ticket: String) async throws -> Reidentification {
        struct Body: Encodable {
            let pid: String
            let reason: String
            let ticket: String
        }
        return try await send(Call("POST", "/v1/reidentifications", idempotent: false, region: Routing.region(ofPID: pid))
            .json(Body(pid: pid, reason: reason, ticket: ticket)))
    }

    /// Approves another officer's request: `self_approval`, `already_approved`.
    @discardableResult
    public func approveReidentification(_ id: String) async throws -> Reidentification {
        try await send(Call("POST", "/v1/reidentifications/\(Self.escaped(id))/approvals", idempotent: false))
    }

    /// The request's state; the identifiers once, on the first call after approval. Never sent twice.
    public func reidentification(_ id: String) async throws -> Reidentification {
        try await send(Call("GET", "/v1/reidentifications/\(Self.escaped(id))", idempotent: false))
    }
}
