import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// Re-identification: turning a pid back into its identifiers. It needs a
/// request with a reason and a ticket, then two approvals by two privacy
/// officers other than the requester; the identifiers are released once, to
/// the requester, and every step is audited.
enum ReidentificationService {
    enum Status: String, Sendable {
        case pendingApproval = "pending_approval"
        case approved
        case fulfilled
        /// The subject was erased before the identifiers were released.
        case cancelled
    }

    static let approvalsNeeded = 2
    static let reasonBytesMax = 500
    static let ticketBytesMax = 64

    struct Record: Sendable {
        let id: String
        let pid: PID
        let requester: String
        let status: Status
        let approvers: [String]
    }

    static func create(pid text: String, reason: String, ticket: String, call: CallContext) async throws -> Record {
        let services = call.services
        guard (1...reasonBytesMax).contains(reason.utf8.count) else {
            throw DomainError.invalid("reason", "1 to \(reasonBytesMax) bytes saying why the identifiers are needed")
        }
        guard (1...ticketBytesMax).contains(ticket.utf8.count),
              ticket.utf8.allSatisfy({ ASCII.isAlphanumeric($0) || "._:/#-".utf8.contains($0) }) else {
            throw DomainError.invalid("ticket", "1-\(ticketBytesMax) letters, digits and . _ : / # -")
        }
        // Both are kept (the reason with the request, the ticket in the audit log): neither may identify.
        for (field, text) in [("reason", reason), ("ticket", ticket)] {
            if let kind = PIIClassifier.classify(text) { throw FeatureService.piiDetected(field: field, kind: kind) }
        }
        let pid = try services.homePID(text)
        let id = services.ids.next(.reidentification)
        let ticketAsCustomerID = try? Identifier(kind: .customerID, raw: ticket)
        try await services.writeAudited(call, action: "reidentification.request", pid: pid) { database in
            guard try SubjectRecords.isLive(pid, keys: services.keys, in: database) else { throw DomainError.unknownSubject() }
            // A customer id has no shape the classifier could recognize, but
            // the region knows its own: a ticket that is one is refused too.
            if let ticketAsCustomerID,
               try SubjectRecords.find(services.keys.pseudonymizers.candidates(for: ticketAsCustomerID), keys: services.keys,
                                        in: database) != nil {
                throw DomainError(.invalid, code: "pii_detected",
                                detail: "ticket: the value is a customer id; this field may not hold an identifier")
            }
            try database.execute("""
                INSERT INTO reidentifications (id, pid, reason, ticket, requester, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [id, pid.rawValue, reason, ticket, call.principal.name, Status.pendingApproval.rawValue,
                      call.now.milliseconds])
            try AuditLog.append(call.event("reidentification.request", pid: pid.rawValue, outcome: "pending_approval",
                                              detail: "id=\(id),ticket=\(ticket)"), to: database)
        }
        return Record(id: id, pid: pid, requester: call.principal.name, status: .pendingApproval, approvers: [])
    }

    static func approve(_ id: String, call: CallContext) async throws -> Record {
        let services = call.services
        let approver = call.principal.name
        let record = try await services.store.write { database -> Result<Record, DomainError> in
            guard let record = try find(id, in: database) else { return .failure(unknown()) }
            let refusal: DomainError?
            if record.requester == approver {
                refusal = DomainError(.refused, code: "self_approval", detail: "the requester cannot approve their own request")
            } else if record.approvers.contains(approver) {
                refusal = DomainError(.conflict, code: "already_approved", detail: "this principal has already approved the request")
            } else if record.status != .pendingApproval {
                refusal = DomainError(.conflict, code: "already_approved",
                                    detail: "the request is \(record.status.rawValue) and takes no more approvals")
            } else {
                refusal = nil
            }
            if let refusal {
                try AuditLog.append(call.event("reidentification.approve", pid: record.pid.rawValue,
                                                  outcome: Refusals.outcome(refusal.code), detail: "id=\(id)"), to: database)
                call.refusals.markAudited()
                return .failure(refusal)
            }
            try database.execute("INSERT INTO reidentification_approvals (id, approver, approved_at) VALUES (?, ?, ?)",
                                 [id, approver, call.now.milliseconds])
            let approvers = record.approvers + [approver]
            let status: Status = approvers.count >= approvalsNeeded ? .approved : .pendingApproval
            try database.execute("UPDATE reidentifications SET status = ? WHERE id = ?", [status.rawValue, id])
            try AuditLog.append(call.event("reidentification.approve", pid: record.pid.rawValue, outcome: status.rawValue,
                                              detail: "id=\(id),approvals=\(approvers.count)"), to: database)
            return .success(Record(id: id, pid: record.pid, requester: record.requester, status: status, approvers: approvers))
        }.get()
        return record
    }

    /// The requester's view. The first fetch after approval releases the
    /// identifiers and marks the request fulfilled in the same transaction
    /// (with its audit record); every later fetch sees `fulfilled` only.
    static func fetch(_ id: String, call: CallContext) async throws -> (record: Record, identifiers: [Identifier]?) {
        let services = call.services
        return try await services.store.write { database -> Result<(record: Record, identifiers: [Identifier]?), DomainError> in
            guard let record = try find(id, in: database) else { return .failure(unknown()) }
            guard record.requester == call.principal.name else {
                let refusal = DomainError(.refused, code: "not_requester", detail: "only the requester may fetch the result")
                try AuditLog.append(call.event("reidentification.fetch", pid: record.pid.rawValue,
                                                  outcome: Refusals.outcome(refusal.code), detail: "id=\(id)"), to: database)
                call.refusals.markAudited()
                return .failure(refusal)
            }
            guard record.status == .approved else {
                // Nothing to release (yet, or any more): the look is audited all the same.
                try AuditLog.append(call.event("reidentification.fetch", pid: record.pid.rawValue, outcome: record.status.rawValue,
                                                  detail: "id=\(id)"), to: database)
                return .success((record, nil))
            }
            guard let key = try SubjectRecords.key(of: record.pid, keys: services.keys, in: database) else {
                try database.execute("UPDATE reidentifications SET status = ? WHERE id = ?", [Status.cancelled.rawValue, id])
                try AuditLog.append(call.event("reidentification.fetch", pid: record.pid.rawValue, outcome: Status.cancelled.rawValue,
                                                  detail: "id=\(id)"), to: database)
                return .success((Record(id: id, pid: record.pid, requester: record.requester, status: .cancelled, approvers: record.approvers), nil))
            }
            let identifiers = try SubjectRecords.identifiers(of: record.pid, key: key, in: database)
            try database.execute("UPDATE reidentifications SET status = ?, fulfilled_at = ? WHERE id = ?",
                                 [Status.fulfilled.rawValue, call.now.milliseconds, id])
            try AuditLog.append(call.event("reidentification.release", pid: record.pid.rawValue, outcome: "released",
                                              detail: "id=\(id),identifiers=\(identifiers.count)"), to: database)
            return .success((Record(id: id, pid: record.pid, requester: record.requester, status: .approved, approvers: record.approvers),
                              identifiers))
        }.get()
    }

    static func unknown() -> DomainError {
        DomainError(.notFound, code: "unknown_reidentification", detail: "no re-identification request with this id")
    }

    static func find(_ id: String, in database: Database) throws -> Record? {
        guard let (pid, requester, status) = try database.fetchOne(
            "SELECT pid, requester, status FROM reidentifications WHERE id = ?", [id], { row throws(StorageError) in
                (try row.decode(0, table: "reidentifications") { try PID(parsing: $0) }, row.text(1),
                 try row.decode(2, table: "reidentifications", Status.init(rawValue:)))
            }) else {
            return nil
        }
        let approvers = try database.fetchAll("SELECT approver FROM reidentification_approvals WHERE id = ? ORDER BY approved_at, approver",
                                              [id]) { $0.text(0) }
        return Record(id: id, pid: pid, requester: requester, status: status,
                      approvers: approvers)
    }
}
