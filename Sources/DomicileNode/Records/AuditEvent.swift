import DomicileCrypto
import DomicileModel
import DomicileStorage

/// One access to personal data. Never an identifier, a feature value or a
/// vector: pids, purposes, codes and counts only.
public struct AuditEvent: Sendable, Equatable {
    public var at: Timestamp
    public var principal: String
    public var action: String
    public var pid: String?
    public var purpose: String?
    public var outcome: String
    public var requestID: String?
    /// Non-identifying context, e.g. `returned=3`.
    public var detail: String?

    public init(at: Timestamp, principal: String, action: String, pid: String? = nil, purpose: String? = nil,
                outcome: String, requestID: String? = nil, detail: String? = nil) {
        self.at = at
        self.principal = principal
        self.action = action
        self.pid = pid
        self.purpose = purpose
        self.outcome = outcome
        self.requestID = requestID
        self.detail = detail
    }
}
