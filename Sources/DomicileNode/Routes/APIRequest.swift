import DomicileModel
import DomicileNet

/// One authenticated API call: the HTTP request a route decodes, and the
/// context of the domain call it makes.
struct APIRequest: Sendable {
    let http: HTTPRequest
    let call: CallContext

    var now: Timestamp { call.now }
    var principal: Principal { call.principal }
    var requestID: String { call.requestID }
    var refusals: RefusalTrail { call.refusals }

    func event(_ action: String, pid: String? = nil, purpose: String? = nil, outcome: String = "ok", detail: String? = nil) -> AuditEvent {
        call.event(action, pid: pid, purpose: purpose, outcome: outcome, detail: detail)
    }
}
