import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// One authenticated API call.
struct APIRequest: Sendable {
    let http: HTTPRequest
    let principal: Principal
    let now: Timestamp
    let services: NodeServices
    /// A read or search: rate-limited, and watched by the access monitor.
    let isRead: Bool
    /// Tells the route whether this call's refusal still needs auditing.
    let refusals: RefusalTrail

    var requestID: String { http.requestID }

    /// The audit event of this call. Every access to a subject's data is
    /// audited, so for a read, building an event that names a pid is also
    /// where the access monitor counts the subject as touched.
    func event(_ action: String, pid: String? = nil, purpose: String? = nil, outcome: String = "ok", detail: String? = nil) -> AuditEvent {
        if isRead, let pid { services.touched(pid, by: principal, request: self) }
        return AuditEvent(at: now, principal: principal.name, action: action, pid: pid, purpose: purpose, outcome: outcome,
                          requestID: requestID, detail: detail)
    }
}

extension NodeServices {
    /// Counts `pid` as touched by `principal`; the touch that crosses the
    /// per-minute limit is recorded as an access anomaly (audit and metric).
    func touched(_ pid: String, by principal: Principal, request: APIRequest) {
        guard let count = accessMonitor.touch(principal.name, pid: pid, now: request.now) else { return }
        metrics.increment("domicile_access_anomalies_total", labels: ["principal": principal.name])
        logger.warning("access anomaly", ["principal": .string(principal.name), "distinct_subjects": .int(Int64(count)),
                                          "request_id": .string(request.requestID)])
        let event = AuditEvent(at: request.now, principal: principal.name, action: "access.anomaly", outcome: "flagged",
                               requestID: request.requestID,
                               detail: "distinct_subjects>\(accessMonitor.distinctSubjectsPerMinute)/min")
        Task { try? await audit(event) }
    }
}
