import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Consent receipts: append one, append a batch, history, active purposes.
enum ConsentRoutes {
    struct ReceiptBody: Decodable, Sendable {
        let action: String
        let purposes: [String]?
        let basis: String?
        let source: String
        let collectedAt: String
        let expiresAt: String?
    }

    /// A batch entry: a receipt's fields, and the pid they are for, side by side.
    struct BatchEntry: Decodable, Sendable {
        let pid: String
        let receipt: ReceiptBody

        private enum CodingKeys: String, CodingKey { case pid }

        init(from decoder: any Decoder) throws {
            pid = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .pid)
            receipt = try ReceiptBody(from: decoder)
        }
    }

    struct BatchBody: Decodable, Sendable {
        let receipts: [BatchEntry]
    }

    /// A validated receipt request, before it gets its place in the chain.
    struct Draft: Sendable {
        let action: ConsentAction
        let purposes: [Purpose]
        let basis: LawfulBasis?
        let source: String
        let collectedAt: Timestamp
        let expiresAt: Timestamp?

        func receipt(pid: PID, after head: (seq: Int64, hash: [UInt8]), now: Timestamp) -> ConsentReceipt {
            ConsentReceipt.make(receiptID: "rc_" + Hex.encode(SecureRandom.bytes(12)), pid: pid, seq: head.seq + 1, action: action,
                                purposes: purposes, basis: basis, source: source, collectedAt: collectedAt, expiresAt: expiresAt,
                                recordedAt: now, previousHash: head.hash)
        }
    }

    struct Receipt: JSONWritable {
        let receipt: ConsentReceipt

        init(_ receipt: ConsentReceipt) { self.receipt = receipt }

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("receipt_id", receipt.receiptID)
                json.member("pid", receipt.pid.rawValue)
                json.member("seq", receipt.seq)
                guard !receipt.redacted else {
                    // Erased: only the links of the chain remain.
                    json.member("hash", Hex.encode(receipt.hash))
                    json.member("prev_hash", Hex.encode(receipt.previousHash))
                    json.member("redacted", true)
                    return
                }
                json.member("action", receipt.action.rawValue)
                json.key("purposes")
                json.array(receipt.purposes) { $0.value($1.rawValue) }
                json.member("basis", receipt.basis?.rawValue)
                json.member("source", receipt.source)
                json.member("collected_at", receipt.collectedAt)
                json.member("expires_at", receipt.expiresAt)
                json.member("recorded_at", receipt.recordedAt)
                json.member("hash", Hex.encode(receipt.hash))
                json.member("prev_hash", Hex.encode(receipt.previousHash))
                json.member("redacted", receipt.redacted)
            }
        }
    }

    struct History: JSONWritable {
        let pid: PID
        let receipts: [ConsentReceipt]
        let chainValid: Bool

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.key("receipts")
                json.array(receipts) { Receipt($1).write(to: &$0) }
                json.member("chain_valid", chainValid)
            }
        }
    }

    struct Active: JSONWritable {
        let pid: PID
        let active: [ActiveConsent]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.key("active")
                json.array(active) { json, consent in
                    json.object { json in
                        json.member("purpose", consent.purpose.rawValue)
                        json.member("basis", consent.basis.rawValue)
                        json.member("granted_at", consent.grantedAt)
                        json.member("expires_at", consent.expiresAt)
                        json.member("receipt_id", consent.receiptID)
                    }
                }
            }
        }
    }

    struct BatchResult: JSONWritable {
        let receipts: [ConsentReceipt]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("count", Int64(receipts.count))
                json.key("receipts")
                json.array(receipts) { json, receipt in
                    json.object { json in
                        json.member("receipt_id", receipt.receiptID)
                        json.member("pid", receipt.pid.rawValue)
                        json.member("seq", receipt.seq)
                        json.member("hash", Hex.encode(receipt.hash))
                    }
                }
            }
        }
    }

    static let sourceBytesMax = 128

    static func add(to api: inout API) {
        let services = api.services
        api.route("POST", "/v1/subjects/{pid}/consents", roles: [.ingest]) { try await append($0, services) }
        api.route("GET", "/v1/subjects/{pid}/consents", roles: [.serve, .privacyOfficer], limited: true) { try await history($0, services) }
        api.route("GET", "/v1/subjects/{pid}/consent", roles: [.serve], limited: true) { try await active($0, services) }
        api.route("POST", "/v1/consents/batch", roles: [.ingest], bodyBytesMax: services.configuration.limits.batchBodyBytesMax) {
            try await batch($0, services)
        }
    }

    // MARK: Validation

    /// Checks what a receipt request says on its own (shape, names, times);
    /// `checkPolicy` then checks it against this region's policy. The split
    /// lets a malformed request be refused as such before any 421: malformed
    /// is malformed in every region.
    static func parse(_ body: ReceiptBody, field prefix: String, limits: NodeConfiguration.Limits,
                      now: Timestamp) throws(HTTPError) -> Draft {
        guard let action = ConsentAction(rawValue: body.action) else {
            throw APIError.invalid("\(prefix)action", "must be grant, revoke or gpc")
        }
        var purposes: [Purpose] = []
        for (index, name) in (body.purposes ?? []).enumerated() {
            guard let purpose = try? Purpose(name) else { throw APIError.unknownPurpose("\(prefix)purposes[\(index)]") }
            purposes.append(purpose)
        }
        switch action {
        case .grant, .revoke:
            guard !purposes.isEmpty else { throw APIError.invalid("\(prefix)purposes", "list at least one purpose") }
        case .gpc:
            guard purposes.isEmpty else {
                throw APIError.invalid("\(prefix)purposes", "a gpc signal revokes the policy's gpc purposes; list none")
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
                    throw APIError.invalid("\(prefix)basis", "must be consent, contract, legitimate_interest or legal_obligation")
                }
                basis = lawful
            }
        }
        let sourceBytes = body.source.utf8
        guard (1...sourceBytesMax).contains(sourceBytes.count), sourceBytes.allSatisfy(isSourceByte) else {
            throw APIError.invalid("\(prefix)source", "1-128 characters of letters, digits and . _ : / + -")
        }
        // Stored with the receipt and shown in its history: it may not identify anyone.
        if let kind = PIIClassifier.classify(body.source) { throw FeatureRoutes.piiDetected(field: "\(prefix)source", kind: kind) }
        guard let collectedAt = try? Timestamp(rfc3339: body.collectedAt) else {
            throw APIError.invalid("\(prefix)collected_at", "must be an RFC 3339 timestamp", code: "invalid_timestamp")
        }
        guard collectedAt <= now.adding(seconds: limits.clockSkewSecondsMax) else {
            throw APIError.invalid("\(prefix)collected_at", "is in the future", code: "invalid_timestamp")
        }
        var expiresAt: Timestamp?
        if action == .grant, let text = body.expiresAt {
            guard let parsed = try? Timestamp(rfc3339: text) else {
                throw APIError.invalid("\(prefix)expires_at", "must be an RFC 3339 timestamp", code: "invalid_timestamp")
            }
            guard parsed > collectedAt else {
                throw APIError.invalid("\(prefix)expires_at", "must be after collected_at", code: "invalid_timestamp")
            }
            expiresAt = parsed
        }
        return Draft(action: action, purposes: purposes, basis: basis, source: body.source, collectedAt: collectedAt, expiresAt: expiresAt)
    }

    /// Every purpose granted must be allowed in this region, and a basis
    /// other than consent must be the one the policy gives that purpose
    /// here. A revocation is not checked against the policy: it may withdraw
    /// a grant of a purpose the policy has since dropped here.
    static func checkPolicy(_ draft: Draft, field prefix: String, services: NodeServices) throws(HTTPError) {
        guard draft.action == .grant else { return }
        for (index, purpose) in draft.purposes.enumerated() {
            guard let allowed = services.policy.basis(for: purpose, in: services.region) else {
                throw APIError.unknownPurpose("\(prefix)purposes[\(index)]")
            }
            if let basis = draft.basis, basis != .consent, basis != allowed {
                throw APIError.invalid("\(prefix)basis", "the policy does not allow this basis for \(purpose) here",
                                       code: "basis_not_allowed")
            }
        }
    }

    private static func isSourceByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return "._:/+-".utf8.contains(byte)
        }
    }

    /// The materialized grants in force now, by the policy in force, sorted.
    static func inForce(_ grants: [Purpose: ActiveConsent], services: NodeServices, now: Timestamp) -> [ActiveConsent] {
        ConsentFolding.inForce(grants, knownPurposes: services.regionPurposes, now: now).values.sorted { $0.purpose < $1.purpose }
    }

    // MARK: Handlers

    static func append(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let draft = try parse(try request.http.decode(ReceiptBody.self), field: "", limits: services.configuration.limits, now: request.now)
        let pid = try services.homePID(request.http.parameter("pid"))
        try checkPolicy(draft, field: "", services: services)
        let receipt = try await services.writeAudited(request, action: "consent.append", pid: pid) { database -> ConsentReceipt in
            guard try SubjectRecords.isLive(pid, keys: services.keys, in: database) else { throw APIError.unknownSubject() }
            return try record(draft, for: pid, request: request, services: services, in: database)
        }
        services.metrics.countAudit(action: "consent.append", outcome: receipt.action.rawValue)
        return .json(Receipt(receipt), status: 201)
    }

    /// Appends the receipt, removes what it withdrew, and audits both, in
    /// the caller's transaction.
    static func record(_ draft: Draft, for pid: PID, request: APIRequest, services: NodeServices, detail: String? = nil,
                       in database: Database) throws -> ConsentReceipt {
        let receipt = draft.receipt(pid: pid, after: try ConsentRecords.head(of: pid, in: database), now: request.now)
        let withdrawn = try ConsentRecords.append(receipt, gpcPurposes: services.gpcPurposes, now: request.now, in: database)
        let removed = try ConsentEnforcement.withdraw(withdrawn, of: pid, services: services, in: database)
        try ConsentEnforcement.refreshEligibility(of: pid, services: services, in: database)
        let details = [detail, removed.isEmpty ? nil : removed.auditDetail].compactMap { $0 }
        try AuditLog.append(request.event("consent.append", pid: pid.rawValue, purpose: purposeField(receipt), outcome: receipt.action.rawValue,
                                          detail: details.isEmpty ? nil : details.joined(separator: ",")), to: database)
        return receipt
    }

    static func batch(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(BatchBody.self)
        let limit = services.configuration.limits.batchReceiptsMax
        guard (1...limit).contains(body.receipts.count) else {
            throw APIError.invalid("receipts", "send 1 to \(limit) receipts per batch")
        }
        let parsed = try body.receipts.enumerated().map { index, entry throws(HTTPError) in
            try parse(entry.receipt, field: "receipts[\(index)].", limits: services.configuration.limits, now: request.now)
        }
        var drafts: [(PID, Draft)] = []
        for (index, (entry, draft)) in zip(body.receipts, parsed).enumerated() {
            let pid: PID
            do { pid = try services.homePID(entry.pid) } catch {
                throw HTTPError(status: error.status, code: error.code, detail: "receipts[\(index)].pid: \(error.detail)",
                                headers: error.headers, extensions: error.extensions)
            }
            try checkPolicy(draft, field: "receipts[\(index)].", services: services)
            drafts.append((pid, draft))
        }
        // One transaction: every receipt is stored, or none is.
        let validated = drafts
        let receipts = try await services.store.write { database -> [ConsentReceipt] in
            var stored: [ConsentReceipt] = []
            for (index, (pid, draft)) in validated.enumerated() {
                guard try SubjectRecords.isLive(pid, keys: services.keys, in: database) else {
                    throw HTTPError(status: 404, code: "unknown_subject", detail: "receipts[\(index)].pid: no such subject in this region")
                }
                stored.append(try record(draft, for: pid, request: request, services: services, detail: "batch", in: database))
            }
            return stored
        }
        for receipt in receipts { services.metrics.countAudit(action: "consent.append", outcome: receipt.action.rawValue) }
        return .json(BatchResult(receipts: receipts), status: 201)
    }

    /// A subject's receipts. An erased subject's receipts remain, redacted
    /// to their hash links, so the chain can still be shown to verify.
    static func history(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let pid = try services.homePID(request.http.parameter("pid"))
        let (exists, receipts) = try services.store.snapshot { database in
            (try SubjectRecords.isLive(pid, keys: services.keys, in: database), try ConsentRecords.receipts(of: pid, in: database))
        }
        guard exists || !receipts.isEmpty else {
            try await services.audit(request.event("consent.history", pid: pid.rawValue, outcome: "not_found"))
            request.refusals.markAudited()
            throw APIError.unknownSubject()
        }
        try await services.audit(request.event("consent.history", pid: pid.rawValue, outcome: exists ? "ok" : "erased",
                                               detail: "returned=\(receipts.count)"))
        return .json(History(pid: pid, receipts: receipts, chainValid: ReceiptChain.verify(receipts)))
    }

    static func active(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let pid = try services.homePID(request.http.parameter("pid"))
        let grants = try await services.readSubject(pid, action: "consent.read", request: request) {
            try ConsentRecords.activeGrants(of: pid, in: $0)
        }
        let active = inForce(grants, services: services, now: request.now)
        try await services.audit(request.event("consent.read", pid: pid.rawValue))
        return .json(Active(pid: pid, active: active))
    }

    static func purposeField(_ receipt: ConsentReceipt) -> String? {
        receipt.purposes.isEmpty ? nil : receipt.purposes.map(\.rawValue).joined(separator: ",")
    }
}
