/// A consent receipt to append (API.md, "Consent").
public struct ConsentRequest: Encodable, Sendable, Hashable {
    public enum Action: String, Codable, Sendable {
        case grant, revoke
        /// Global Privacy Control: revokes every purpose the policy marks `gpc: true`.
        case gpc
    }

    public var action: Action
    public var purposes: [String]?
    /// The lawful basis (`consent`, `contract`, `legitimate_interest`, `legal_obligation`); grants
    /// only; absent: `consent`. Another must be the one the policy allows for the purpose in the region.
    public var basis: String?
    /// Where the choice was collected (`web-portal:v2`).
    public var source: String
    /// RFC 3339.
    public var collectedAt: String
    /// RFC 3339; grants only.
    public var expiresAt: String?

    enum CodingKeys: String, CodingKey {
        case action, purposes, basis, source, collectedAt = "collected_at", expiresAt = "expires_at"
    }

    public init(action: Action, purposes: [String]?, basis: String? = nil, source: String, collectedAt: String, expiresAt: String? = nil) {
        self.action = action
        self.purposes = purposes
        self.basis = basis
        self.source = source
        self.collectedAt = collectedAt
        self.expiresAt = expiresAt
    }

    public static func grant(_ purposes: [String], basis: String? = nil, source: String, collectedAt: String,
                             expiresAt: String? = nil) -> ConsentRequest {
        ConsentRequest(action: .grant, purposes: purposes, basis: basis, source: source, collectedAt: collectedAt, expiresAt: expiresAt)
    }

    public static func revoke(_ purposes: [String], source: String, collectedAt: String) -> ConsentRequest {
        ConsentRequest(action: .revoke, purposes: purposes, source: source, collectedAt: collectedAt)
    }

    public static func gpc(source: String, collectedAt: String) -> ConsentRequest {
        ConsentRequest(action: .gpc, purposes: nil, source: source, collectedAt: collectedAt)
    }
}

/// A stored receipt, a link of the subject's hash chain. An erased
/// subject's receipts keep only their links (`redacted`).
public struct ConsentReceipt: Decodable, Sendable, Hashable {
    public let receiptID: String
    public let pid: String
    public let seq: Int64
    public let action: String?
    public let purposes: [String]?
    public let basis: String?
    public let source: String?
    public let collectedAt: String?
    public let expiresAt: String?
    public let recordedAt: String?
    public let hash: String
    public let prevHash: String?
    public let redacted: Bool?

    enum CodingKeys: String, CodingKey {
        case receiptID = "receipt_id", pid, seq, action, purposes, basis, source, collectedAt = "collected_at"
        case expiresAt = "expires_at", recordedAt = "recorded_at", hash, prevHash = "prev_hash", redacted
    }
}

/// `GET /v1/subjects/{pid}/consents`: oldest first.
public struct ConsentHistory: Decodable, Sendable, Hashable {
    public let receipts: [ConsentReceipt]
    /// Every receipt's hash links to the one before.
    public let chainValid: Bool

    enum CodingKeys: String, CodingKey { case receipts, chainValid = "chain_valid" }
}

/// `GET /v1/subjects/{pid}/consent`: the purposes in force.
public struct ConsentState: Decodable, Sendable, Hashable {
    public struct Active: Decodable, Sendable, Hashable {
        public let purpose: String
        public let basis: String
        public let grantedAt: String
        public let expiresAt: String?
        public let receiptID: String

        enum CodingKeys: String, CodingKey {
            case purpose, basis, grantedAt = "granted_at", expiresAt = "expires_at", receiptID = "receipt_id"
        }
    }

    public let pid: String
    public let active: [Active]

    public var purposes: [String] { active.map(\.purpose) }
}

/// `POST /v1/consents/batch`: the receipts stored, in order.
public struct ConsentBatchResult: Decodable, Sendable, Hashable {
    public struct Stored: Decodable, Sendable, Hashable {
        public let receiptID: String
        public let pid: String
        public let seq: Int64
        public let hash: String

        enum CodingKeys: String, CodingKey { case receiptID = "receipt_id", pid, seq, hash }
    }

    public let count: Int
    public let receipts: [Stored]
}

extension DomicileClient {
    /// Appends a receipt to the subject's chain. Not retried after a lost
    /// connection or a 503 `no_quorum`: a second copy would be a second receipt.
    @discardableResult
    public func appendConsent(_ receipt: ConsentRequest, for pid: String) async throws -> ConsentReceipt {
        try await send(Call("POST", "/v1/subjects/\(Self.escaped(pid))/consents", idempotent: false, region: Routing.region(ofPID: pid))
            .json(receipt))
    }

    /// Appends receipts of several subjects of one region at once: all stored, or (a refusal) those before the refused one.
    public func appendConsents(_ entries: [(pid: String, receipt: ConsentRequest)]) async throws -> ConsentBatchResult {
        struct Entry: Encodable {
            let pid: String
            let receipt: ConsentRequest
            func encode(to encoder: any Encoder) throws {
                try receipt.encode(to: encoder)
                var container = encoder.container(keyedBy: Key.self)
                try container.encode(pid, forKey: .pid)
            }
            enum Key: String, CodingKey { case pid }
        }
        struct Body: Encodable { let receipts: [Entry] }
        let region = entries.first.flatMap { Routing.region(ofPID: $0.pid) }
        return try await send(Call("POST", "/v1/consents/batch", idempotent: false, region: region)
            .json(Body(receipts: entries.map { Entry(pid: $0.pid, receipt: $0.receipt) })))
    }

    /// Every receipt of the subject, oldest first, and whether the chain holds.
    public func consentHistory(of pid: String) async throws -> ConsentHistory {
        try await send(Call("GET", "/v1/subjects/\(Self.escaped(pid))/consents", region: Routing.region(ofPID: pid)))
    }

    /// The purposes the subject's consent covers now.
    public func consent(of pid: String) async throws -> ConsentState {
        try await send(Call("GET", "/v1/subjects/\(Self.escaped(pid))/consent", region: Routing.region(ofPID: pid)))
    }
}
