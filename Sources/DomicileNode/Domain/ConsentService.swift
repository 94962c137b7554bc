import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// Consent receipts: validated, appended to the subject's hash chain with
/// what they withdrew removed in the same transaction, and read back.
enum ConsentService {
    struct ReceiptFields: Decodable, Sendable {
        let action: String
        let purposes: [String]?
        let basis: String?
        let source: String
        let collectedAt: String
        let expiresAt: String?
    }

    /// A validated receipt request, before it gets its place in the chain.
    struct Draft: Sendable {
        let action: ConsentAction
        let purposes: [Purpose]
        let basis: LawfulBasis?
        /// The client's source, or a revocation's marker in its place.
        let source: String
        /// Why a revocation's source was not kept (audited), or nil.
        let sourceFlaw: ReceiptSource.Flaw?
        let collectedAt: Timestamp
        let expiresAt: Timestamp?

        func receipt(_ receiptID: String, pid: PID, after head: (seq: Int64, hash: [UInt8]), now: Timestamp) -> ConsentReceipt {
            ConsentReceipt.make(receiptID: receiptID, pid: pid, seq: head.seq + 1, action: action,
                                purposes: purposes, basis: basis, source: source, collectedAt: collectedAt, expiresAt: expiresAt,
                                recordedAt: now, previousHash: head.hash)
        }
    }

    /// Checks what a receipt request says on its own (shape, names, times);
    /// `checkPolicy` then checks it against this region's policy. The split
    /// lets a malformed request be refused as such before any 421: malformed
    /// is malformed in every region.
    static func parse(_ body: ReceiptFields, field prefix: String, limits: NodeConfiguration.Limits,
                      now: Timestamp) throws(DomainError) -> Draft {
        guard let action = ConsentAction(rawValue: body.action) else {
            throw DomainError.invalid("\(prefix)action", "must be grant, revoke or gpc")
        }
        var purposes: [Purpose] = []
        for (index, name) in (body.purposes ?? []).enumerated() {
            guard let purpose = try? Purpose(name) else { throw DomainError.unknownPurpose("\(prefix)purposes[\(index)]") }
            purposes.append(purpose)
        }
        switch action {
        case .grant, .revoke:
            guard !purposes.isEmpty else { throw DomainError.invalid("\(prefix)purposes", "list at least one purpose") }
        case .gpc:
            guard purposes.isEmpty else {
                throw DomainError.invalid("\(prefix)purposes", "a gpc signal revokes the policy's gpc purposes; list none")
            }
        }
        // A revocation withdraws whatever grant there is, on any basis: the
        // basis and expiry a consent platform may send along with it are
        // redundant, ignored, never a reason to refuse it (DESIGN.md
        // invariant 2; docs/DECISIONS.md, "Receipt basis").
        var basis: LawfulBasis?
        if action == .grant {
            basis = .consent
            if let name = body.basis {
                guard let lawful = LawfulBasis(rawValue: name) else {
                    throw DomainError.invalid("\(prefix)basis", "must be consent, contract, legitimate_interest or legal_obligation")
                }
                basis = lawful
            }
        }
        // Stored with the receipt and shown in its history: it may not
        // identify anyone. A revocation is recorded with a marker instead.
        let sourceFlaw = ReceiptSource.flaw(of: body.source)
        if let sourceFlaw, action == .grant { throw sourceFlaw.refusal(field: "\(prefix)source") }
        guard let collectedAt = try? Timestamp(rfc3339: body.collectedAt) else {
            throw DomainError.invalid("\(prefix)collected_at", "must be an RFC 3339 timestamp", code: "invalid_timestamp")
        }
        guard collectedAt <= now.adding(seconds: limits.clockSkewSecondsMax) else {
            throw DomainError.invalid("\(prefix)collected_at", "is in the future", code: "invalid_timestamp")
        }
        var expiresAt: Timestamp?
        if action == .grant, let text = body.expiresAt {
            guard let parsed = try? Timestamp(rfc3339: text) else {
                throw DomainError.invalid("\(prefix)expires_at", "must be an RFC 3339 timestamp", code: "invalid_timestamp")
            }
            guard parsed > collectedAt else {
                throw DomainError.invalid("\(prefix)expires_at", "must be after collected_at", code: "invalid_timestamp")
            }
            expiresAt = parsed
        }
        return Draft(action: action, purposes: purposes, basis: basis, source: sourceFlaw?.marker ?? body.source, sourceFlaw: sourceFlaw,
                     collectedAt: collectedAt, expiresAt: expiresAt)
    }

    /// Every purpose granted must be allowed in this region, and a basis
    /// other than consent must be the one the policy gives that purpose
    /// here. A revocation is not checked against the policy: it may withdraw
    /// a grant of a purpose the policy has since dropped here.
    static func checkPolicy(_ draft: Draft, field prefix: String, services: NodeServices) throws(DomainError) {
        guard draft.action == .grant else { return }
        for (index, purpose) in draft.purposes.enumerated() {
            guard let allowed = services.policy.basis(for: purpose, in: services.region) else {
                throw DomainError.unknownPurpose("\(prefix)purposes[\(index)]")
            }
            if let basis = draft.basis, basis != .consent, basis != allowed {
                throw DomainError.invalid("\(prefix)basis", "the policy does not allow this basis for \(purpose) here",
                                       code: "basis_not_allowed")
            }
        }
    }

    /// The materialized grants in force now, by the policy in force, sorted.
    static func inForce(_ grants: [Purpose: ActiveConsent], services: NodeServices, now: Timestamp) -> [ActiveConsent] {
        ConsentFolding.inForce(grants, knownPurposes: services.regionPurposes, now: now).values.sorted { $0.purpose < $1.purpose }
    }

    /// Appends one receipt for a live subject of this region (DESIGN.md invariant 2: a revocation is never refused for its basis or source).
    static func append(_ draft: Draft, for pid: PID, call: CallContext) async throws -> ConsentReceipt {
        let services = call.services
        try checkPolicy(draft, field: "", services: services)
        let receipt = try await services.writeAudited(call, action: "consent.append", pid: pid) { database -> ConsentReceipt in
            guard try SubjectRecords.isLive(pid, keys: services.keys, in: database) else { throw DomainError.unknownSubject() }
            return try record(draft, for: pid, call: call, in: database)
        }
        services.metrics.countAudit(action: "consent.append", outcome: receipt.action.rawValue)
        if receipt.action == .revoke { services.exportsRetracted() }
        return receipt
    }

    /// Appends the receipt, removes what it withdrew, and audits both, in
    /// the caller's transaction.
    static func record(_ draft: Draft, for pid: PID, call: CallContext, detail: String? = nil,
                       in database: Database) throws -> ConsentReceipt {
        let receipt = draft.receipt(call.services.ids.next(.consentReceipt), pid: pid, after: try ConsentRecords.head(of: pid, in: database),
                                    now: call.now)
        let withdrawn = try ConsentRecords.append(receipt, gpcPurposes: call.services.gpcPurposes, now: call.now, in: database)
        let removed = try ConsentEnforcement.withdraw(withdrawn, of: pid, now: call.now, services: call.services, in: database)
        try ConsentEnforcement.refreshEligibility(of: pid, services: call.services, in: database)
        let details = [detail, draft.sourceFlaw.map { "source_redacted=\($0.code)" },
                       removed.isEmpty ? nil : removed.auditDetail].compactMap { $0 }
        try AuditLog.append(call.event("consent.append", pid: pid.rawValue, purpose: purposeField(receipt), outcome: receipt.action.rawValue,
                                          detail: details.isEmpty ? nil : details.joined(separator: ",")), to: database)
        return receipt
    }

    /// One batch entry checked on its own: the subject and draft to store,
    /// or the refusal it would get alone.
    typealias CheckedEntry = Result<(pid: PID, draft: Draft), DomainError>

    /// What a batch stored, and the refusal it answers with if an entry failed.
    struct BatchOutcome: Sendable {
        let stored: [(index: Int, receipt: ConsentReceipt)]
        let refusal: DomainError?
        /// The `request.refused` events written for the entries not stored.
        let refusalEvents: [AuditEvent]
    }

    /// Every entry is checked on its own. When all pass, all are stored in
    /// one transaction. When one fails, the batch answers the first failing
    /// entry's refusal and stores none of its grants (grants are all or
    /// nothing), but still stores, in that transaction, every revocation that
    /// passes on its own: a revocation is never refused because of another
    /// entry (DESIGN.md invariant 2). The refusal lists those under `stored`;
    /// the entries not stored are audited as refused, with `refusalDetail`.
    static func batch(_ entries: [(pid: String, receipt: ReceiptFields)], refusalDetail: String,
                      call: CallContext) async throws -> [ConsentReceipt] {
        let services = call.services
        let limit = services.configuration.limits.batchReceiptsMax
        guard (1...limit).contains(entries.count) else {
            throw DomainError.invalid("receipts", "send 1 to \(limit) receipts per batch")
        }
        let checked = entries.enumerated().map { index, entry in check(entry, index: index, call: call) }
        let pids = entries.map(\.pid)
        let outcome: BatchOutcome
        do {
            outcome = try await services.store.write { database in
                try storeBatch(checked, pids: pids, refusalDetail: refusalDetail, call: call, in: database)
            }
        } catch {
            // Rolled back: the indexes may hold what its receipts withdrew or made eligible.
            try? await services.resynchronizeVectors(of: Refusals.subjects(named: pids, region: services.region))
            throw error
        }
        for (_, receipt) in outcome.stored { services.metrics.countAudit(action: "consent.append", outcome: receipt.action.rawValue) }
        if outcome.stored.contains(where: { $0.receipt.action == .revoke }) { services.exportsRetracted() }
        for event in outcome.refusalEvents { services.metrics.countAudit(action: event.action, outcome: event.outcome) }
        guard var refusal = outcome.refusal else { return outcome.stored.map(\.receipt) }
        call.refusals.markAudited()
        refusal.extensions["stored"] = .array(outcome.stored.map { index, receipt in
            .object(["index": .number(Double(index)), "receipt_id": .string(receipt.receiptID), "pid": .string(receipt.pid.rawValue),
                     "seq": .number(Double(receipt.seq)), "hash": .string(Hex.encode(receipt.hash))])
        })
        throw refusal
    }

    /// An entry's draft, pid and policy, checked as a single receipt would be
    /// (whether its subject exists is checked in the transaction).
    static func check(_ entry: (pid: String, receipt: ReceiptFields), index: Int, call: CallContext) -> CheckedEntry {
        let prefix = "receipts[\(index)]."
        do throws(DomainError) {
            let draft = try parse(entry.receipt, field: prefix, limits: call.services.configuration.limits, now: call.now)
            let pid: PID
            do { pid = try call.services.homePID(entry.pid) } catch {
                throw error.at("\(prefix)pid: ")
            }
            try checkPolicy(draft, field: prefix, services: call.services)
            return .success((pid, draft))
        } catch {
            return .failure(error)
        }
    }

    /// Stores a checked batch in the caller's transaction (see `batch`), and
    /// audits the refusal for the subjects of the entries it did not store.
    static func storeBatch(_ checked: [CheckedEntry], pids: [String], refusalDetail: String, call: CallContext,
                           in database: Database) throws -> BatchOutcome {
        var checked = checked
        for (index, entry) in checked.enumerated() {
            guard case .success(let (pid, _)) = entry, try !SubjectRecords.isLive(pid, keys: call.services.keys, in: database) else { continue }
            checked[index] = .failure(DomainError(.notFound, code: "unknown_subject", detail: "receipts[\(index)].pid: no such subject in this region"))
        }
        let refusal = checked.lazy.compactMap { entry -> DomainError? in
            if case .failure(let refusal) = entry { refusal } else { nil }
        }.first
        var stored: [(index: Int, receipt: ConsentReceipt)] = []
        for (index, entry) in checked.enumerated() {
            // A failing entry holds back the grants, never a revocation.
            guard case .success(let (pid, draft)) = entry, refusal == nil || draft.action != .grant else { continue }
            stored.append((index, try record(draft, for: pid, call: call, detail: "batch", in: database)))
        }
        guard let refusal else { return BatchOutcome(stored: stored, refusal: nil, refusalEvents: []) }
        let storedIndices = Set(stored.map(\.index))
        let unstored = pids.enumerated().filter { !storedIndices.contains($0.offset) }.map(\.element)
        let events = Refusals.subjects(named: unstored, region: call.services.region).map { pid in
            call.event(Refusals.action, pid: pid.rawValue, outcome: Refusals.outcome(refusal.code), detail: refusalDetail)
        }
        for event in events { try AuditLog.append(event, to: database) }
        return BatchOutcome(stored: stored, refusal: refusal, refusalEvents: events)
    }

    /// A subject's receipts and whether they still chain. An erased
    /// subject's receipts remain, redacted to their hash links, so the chain
    /// can still be shown to verify.
    static func history(of pid: PID, call: CallContext) async throws -> (receipts: [ConsentReceipt], chainValid: Bool) {
        let services = call.services
        let (exists, receipts) = try services.store.snapshot { database in
            (try SubjectRecords.isLive(pid, keys: services.keys, in: database), try ConsentRecords.receipts(of: pid, in: database))
        }
        guard exists || !receipts.isEmpty else {
            try await services.audit(call.event("consent.history", pid: pid.rawValue, outcome: "not_found"))
            call.refusals.markAudited()
            throw DomainError.unknownSubject()
        }
        try await services.audit(call.event("consent.history", pid: pid.rawValue, outcome: exists ? "ok" : "erased",
                                            detail: "returned=\(receipts.count)"))
        return (receipts, ReceiptChain.verify(receipts))
    }

    /// The grants in force for a subject now.
    static func active(of pid: PID, call: CallContext) async throws -> [ActiveConsent] {
        let services = call.services
        let grants = try await services.readSubject(pid, action: "consent.read", call: call) {
            try ConsentRecords.activeGrants(of: pid, in: $0)
        }
        let active = inForce(grants, services: services, now: call.now)
        try await services.audit(call.event("consent.read", pid: pid.rawValue))
        return active
    }

    static func purposeField(_ receipt: ConsentReceipt) -> String? {
        receipt.purposes.isEmpty ? nil : receipt.purposes.map(\.rawValue).joined(separator: ",")
    }
}
