import DomicileModel
import DomicileStorage

/// How a refusal is audited, wherever it is decided: one `request.refused`
/// event per subject of this region the call named, outcome
/// `refused:<code>` (docs/DECISIONS.md, "Refusals, revocations and client
/// text"). `RefusalAudit` (Routes/) applies it to refused HTTP calls; the
/// domain applies it where a refusal is decided inside a transaction.
enum Refusals {
    static let action = "request.refused"

    /// The outcome of a refusal's audit event.
    static func outcome(_ code: String) -> String { "refused:\(code)" }

    /// The detail of a `request.refused` event: the route refused.
    static func detail(method: String, pattern: String) -> String { "route=\(method) \(pattern)" }

    /// The pids among `texts` that parse and belong to `region`, each once.
    static func subjects(named texts: [String], region: RegionID) -> [PID] {
        var seen: Set<String> = []
        return texts.compactMap { try? PID(parsing: $0) }.filter { $0.region == region && seen.insert($0.rawValue).inserted }
    }
}

extension NodeServices {
    /// Appends the audit events of a refusal in one transaction. A failure
    /// is logged, not thrown: the refusal stays the answer. Returns whether
    /// the events were written.
    @discardableResult
    func auditRefusal(_ events: [AuditEvent], code: String, requestID: String) async -> Bool {
        do {
            try await store.write { database in
                for event in events { try AuditLog.append(event, to: database) }
            }
        } catch {
            logger.warning("refusal not audited", ["code": .string(code), "request_id": .string(requestID)])
            return false
        }
        for event in events { metrics.countAudit(action: event.action, outcome: event.outcome) }
        return true
    }
}
