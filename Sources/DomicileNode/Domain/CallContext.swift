import DomicileModel

/// One call of a domain service: who makes it, when, under which request
/// id, and whether it reads (reads are watched by the access monitor). A
/// route builds it from an authenticated request; a replicated entry, a
/// forwarded request or a test builds it the same way, so a domain call
/// depends on nothing but its inputs.
struct CallContext: Sendable {
    let principal: Principal
    let now: Timestamp
    let requestID: String
    /// A read or search: every subject it names counts towards access-anomaly detection.
    let isRead: Bool
    /// Tells the route whether this call's refusal still needs auditing.
    let refusals: RefusalTrail
    let services: NodeServices

    init(principal: Principal, now: Timestamp, requestID: String, isRead: Bool = false, refusals: RefusalTrail = RefusalTrail(),
         services: NodeServices) {
        self.principal = principal
        self.now = now
        self.requestID = requestID
        self.isRead = isRead
        self.refusals = refusals
        self.services = services
    }

    /// The audit event of this call. Every access to a subject's data is
    /// audited, so for a read, building an event that names a pid is also
    /// where the access monitor counts the subject as touched.
    func event(_ action: String, pid: String? = nil, purpose: String? = nil, outcome: String = "ok", detail: String? = nil) -> AuditEvent {
        if isRead, let pid { services.touched(pid, by: principal, call: self) }
        return AuditEvent(at: now, principal: principal.name, action: action, pid: pid, purpose: purpose, outcome: outcome,
                          requestID: requestID, detail: detail)
    }
}

extension NodeServices {
    /// Counts `pid` as touched by `principal`; the touch that crosses the
    /// per-minute limit is recorded as an access anomaly (audit and metric).
    func touched(_ pid: String, by principal: Principal, call: CallContext) {
        guard let count = accessMonitor.touch(principal.name, pid: pid, now: call.now) else { return }
        metrics.increment("domicile_access_anomalies_total", labels: ["principal": principal.name])
        logger.warning("access anomaly", ["principal": .string(principal.name), "distinct_subjects": .int(Int64(count)),
                                          "request_id": .string(call.requestID)])
        let event = AuditEvent(at: call.now, principal: principal.name, action: "access.anomaly", outcome: "flagged",
                               requestID: call.requestID,
                               detail: "distinct_subjects>\(accessMonitor.distinctSubjectsPerMinute)/min")
        Task { try? await audit(event) }
    }
}
