import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage

/// `GET /v1/audit` and `GET /v1/audit/verify`. Reading the audit log is not
/// itself audited: it holds pids and codes only, and auditing its reads
/// would move the head under the verifier's feet.
enum AuditRoutes {
    struct Event: Encodable {
        let seq: Int64
        let at: Timestamp
        let principal: String
        let action: String
        let pid: String?
        let purpose: String?
        let outcome: String
        let requestId: String?
        let detail: String?
        let hash: String
    }

    struct Page: Encodable {
        let events: [Event]
        /// Pass as `after` for the next page; absent at the end.
        let nextAfter: Int64?
    }

    struct Verification: Encodable {
        let valid: Bool
        let length: Int64
        let head: String
        let firstInvalidSeq: Int64?
    }

    static func add(to api: inout API) {
        let services = api.services
        api.route("GET", "/v1/audit", roles: [.privacyOfficer]) { request in
            let query = try request.http.queryParameters()
            let after = try integer(query["after"], name: "after", default: 0, range: 0...Int64.max)
            let limit = try integer(query["limit"], name: "limit", default: 100, range: 1...Int64(services.configuration.limits.auditPageMax))
            let events = try services.store.read { try AuditLog.events(after: after, limit: Int(limit), in: $0) }
            let page = Page(events: events.map { stored in
                Event(seq: stored.seq, at: stored.event.at, principal: stored.event.principal, action: stored.event.action,
                      pid: stored.event.pid, purpose: stored.event.purpose, outcome: stored.event.outcome,
                      requestId: stored.event.requestID, detail: stored.event.detail, hash: Hex.encode(stored.hash))
            }, nextAfter: events.count == Int(limit) ? events.last?.seq : nil)
            return .json(page)
        }
        api.route("GET", "/v1/audit/verify", roles: [.privacyOfficer]) { _ in
            let result = try services.store.snapshot { try AuditLog.verify($0) }
            return .json(Verification(valid: result.valid, length: result.length, head: result.head, firstInvalidSeq: result.firstInvalidSeq))
        }
    }

    static func integer(_ text: String?, name: String, default fallback: Int64, range: ClosedRange<Int64>) throws(DomainError) -> Int64 {
        guard let text else { return fallback }
        guard let value = Int64(text), range.contains(value) else {
            throw DomainError.invalid(name, "must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}
