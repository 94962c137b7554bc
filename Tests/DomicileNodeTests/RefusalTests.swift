import DomicileTestSupport
import Foundation
import XCTest

/// Revocations are never refused for a redundant field; refused calls that
/// name a subject are audited with their code; client text that is stored
/// or audited (receipt sources, re-identification reasons and tickets) may
/// not hold an identifier, and never reaches the audit log or the logs.
final class RefusalTests: NodeTestCase {
    static let vector = "[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]"

    func defineCollection() async throws {
        let response = try await node.call("PUT", "/v1/collections/recs", token: token("admin"), json: """
            {"dimension":8,"metric":"cosine","purpose":"product_recs","index":{"kind":"flat"},"export":{"epsilon":4.0,"delta":1e-6,"clip_norm":1.0}}
            """)
        XCTAssertTrue([200, 201].contains(response.status), response.text)
    }

    /// A subject with product_recs granted and a vector in `recs`.
    func subjectWithVector(_ email: String) async throws -> String {
        let pid = try await register(email: email)
        await XCTAssertEqualAsync(try await receipt(pid, "grant", ["product_recs"]).status, 201)
        let put = try await node.call("PUT", "/v1/collections/recs/vectors/\(pid)", token: token("ingest"), json: #"{"vector":\#(Self.vector)}"#)
        XCTAssertTrue([200, 201].contains(put.status), put.text)
        return pid
    }

    func searchable() async throws -> Set<String> {
        let response = try await node.call("POST", "/v1/collections/recs/search", token: token("serve"),
                                           json: #"{"vector":\#(Self.vector),"k":10,"purpose":"product_recs"}"#)
        XCTAssertEqual(response.status, 200, response.text)
        return Set((response.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String })
    }

    func events(requestID: String) async throws -> [[String: Any]] {
        try await auditEvents().filter { $0["request_id"] as? String == requestID }
    }

    /// Everything this node has written that a reader could see: the audit
    /// log as served, its log lines, and its data files.
    func assertNowhere(_ raw: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let audit = try await node.call("GET", "/v1/audit?limit=1000", token: token("privacy_officer"))
        XCTAssertFalse(audit.text.contains(raw), "the audit log holds the refused value", file: file, line: line)
        XCTAssertFalse(node.logLines.joined().contains(raw), "the node's log holds the refused value", file: file, line: line)
        let stderr = (try? String(contentsOfFile: federation.directory.file("eu-1/stderr.log"), encoding: .utf8)) ?? ""
        XCTAssertFalse(stderr.contains(raw), "the node's stderr holds the refused value", file: file, line: line)
        let data = federation.dataDirectory("eu-1")
        for name in try FileManager.default.contentsOfDirectory(atPath: data) where name.hasPrefix("node.sqlite") {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: data + "/" + name))
            XCTAssertNil(bytes.range(of: Data(raw.utf8)), "\(name) holds the refused value", file: file, line: line)
        }
    }

    // MARK: Revocations

    func test_revoke_withARedundantBasis_isRecorded_andWithdrawsConsentAndVectors() async throws {
        try startNode()
        try await defineCollection()
        let pid = try await subjectWithVector("revoke-basis@example.com")
        await XCTAssertEqualAsync(try await searchable(), [pid])

        let revoked = try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
            {"action":"revoke","purposes":["product_recs"],"basis":"consent","source":"cmp:onetrust","collected_at":"2026-01-02T00:00:00Z","expires_at":"2027-01-01T00:00:00Z"}
            """)
        XCTAssertEqual(revoked.status, 201, revoked.text)
        XCTAssertEqual(revoked.json["action"] as? String, "revoke")
        XCTAssertNil(revoked.json["basis"] as? String, "a revocation records no basis: \(revoked.text)")
        XCTAssertNil(revoked.json["expires_at"] as? String, "a revocation records no expiry: \(revoked.text)")
        await XCTAssertEqualAsync(try await activePurposes(pid), [])
        await XCTAssertEqualAsync(try await searchable(), [], "the vector left the index before the revoke returned")
        let appended = try await auditEvents().filter { $0["action"] as? String == "consent.append" && $0["pid"] as? String == pid }
        XCTAssertEqual(appended.map { $0["outcome"] as? String }, ["grant", "revoke"])

        // A GPC signal with a basis is a GPC signal.
        await XCTAssertEqualAsync(try await receipt(pid, "grant", ["marketing_email"]).status, 201)
        let gpc = try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
            {"action":"gpc","basis":"consent","source":"browser:gpc","collected_at":"2026-01-03T00:00:00Z"}
            """)
        XCTAssertEqual(gpc.status, 201, gpc.text)
        await XCTAssertEqualAsync(try await activePurposes(pid), [])
    }

    func test_batchRevoke_withARedundantBasis_isRecorded_andWithdrawsConsentAndVectors() async throws {
        try startNode()
        try await defineCollection()
        let first = try await subjectWithVector("batch-revoke-1@example.com")
        let second = try await subjectWithVector("batch-revoke-2@example.com")
        await XCTAssertEqualAsync(try await searchable(), [first, second])

        func entry(_ pid: String, _ action: String) -> String {
            #"{"pid":"\#(pid)","action":"\#(action)","purposes":["product_recs"],"basis":"consent","source":"cmp:bulk","collected_at":"2026-01-02T00:00:00Z"}"#
        }
        let batch = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                        json: #"{"receipts":[\#(entry(first, "revoke")),\#(entry(second, "revoke"))]}"#)
        XCTAssertEqual(batch.status, 201, batch.text)
        XCTAssertEqual(batch.json["count"] as? Int, 2)
        await XCTAssertEqualAsync(try await activePurposes(first), [])
        await XCTAssertEqualAsync(try await activePurposes(second), [])
        await XCTAssertEqualAsync(try await searchable(), [])
        let revokes = try await auditEvents().filter { $0["action"] as? String == "consent.append" && $0["outcome"] as? String == "revoke" }
        XCTAssertEqual(Set(revokes.compactMap { $0["pid"] as? String }), [first, second])
        XCTAssertTrue(revokes.allSatisfy { ($0["detail"] as? String ?? "").hasPrefix("batch") })
    }

    /// A source that may not be kept does not stop a revocation: it is
    /// recorded with a marker in its place, audited as redacted, and the
    /// text is stored nowhere. A grant with it is still refused.
    func test_revoke_withASourceHoldingAnIdentifier_isRecordedWithAMarker_andTakesEffect() async throws {
        try startNode()
        try await defineCollection()
        let pid = try await subjectWithVector("revoke-source@example.com")
        let phone = "+4915177665544"

        let revoked = try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
            {"action":"revoke","purposes":["product_recs"],"source":"\(phone)","collected_at":"2026-01-02T00:00:00Z"}
            """, headers: ["X-Request-Id": "source-revoke"])
        XCTAssertEqual(revoked.status, 201, revoked.text)
        XCTAssertEqual(revoked.json["source"] as? String, "redacted:pii_detected")
        await XCTAssertEqualAsync(try await activePurposes(pid), [])
        await XCTAssertEqualAsync(try await searchable(), [], "the vector left the index before the revoke returned")
        let appended = try await events(requestID: "source-revoke")
        XCTAssertEqual(appended.map { "\($0["action"]!) \($0["outcome"]!)" }, ["consent.append revoke"])
        XCTAssertTrue((appended.first?["detail"] as? String ?? "").contains("source_redacted=pii_detected"), "\(appended)")

        // Text that breaks the character rules: a GPC signal is recorded all the same.
        await XCTAssertEqualAsync(try await receipt(pid, "grant", ["marketing_email"]).status, 201)
        let gpc = try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
            {"action":"gpc","source":"Browser GPC signal (Sec-GPC: 1)","collected_at":"2026-01-03T00:00:00Z"}
            """)
        XCTAssertEqual(gpc.status, 201, gpc.text)
        XCTAssertEqual(gpc.json["source"] as? String, "redacted:invalid_request")
        await XCTAssertEqualAsync(try await activePurposes(pid), [])

        let history = try await node.call("GET", "/v1/subjects/\(pid)/consents", token: token("serve"))
        XCTAssertEqual(history.json["chain_valid"] as? Bool, true, history.text)
        let sources = (history.json["receipts"] as? [[String: Any]] ?? []).compactMap { $0["source"] as? String }
        XCTAssertEqual(sources, ["test:e2e", "redacted:pii_detected", "test:e2e", "redacted:invalid_request"])

        // A grant is still refused for its source, and the marker is the node's alone.
        func grant(source: String) async throws -> NodeProcess.Response {
            try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
                {"action":"grant","purposes":["product_recs"],"source":"\(source)","collected_at":"2026-01-04T00:00:00Z"}
                """)
        }
        assertProblem(try await grant(source: phone), 422, "pii_detected")
        assertProblem(try await grant(source: "redacted:pii_detected"), 422, "invalid_request")
        // Malformed is still malformed: a source that is not a string.
        let numeric = try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
            {"action":"revoke","purposes":["product_recs"],"source":4915177665544,"collected_at":"2026-01-04T00:00:00Z"}
            """)
        XCTAssertTrue((400..<500).contains(numeric.status), numeric.text)
        await XCTAssertEqualAsync(try await activePurposes(pid), [])
        try await assertNowhere("4915177665544")
    }

    /// One entry that fails does not hold back the batch's revocations: they
    /// are stored and listed under `stored`; its grants are not; the
    /// subjects of the entries not stored are audited as refused.
    func test_batch_withAFailingEntry_storesItsRevocations_notItsGrants() async throws {
        try startNode()
        try await defineCollection()
        let first = try await subjectWithVector("batch-partial-1@example.com")
        let second = try await subjectWithVector("batch-partial-2@example.com")
        let third = try await register(email: "batch-partial-3@example.com")
        let erased = try await register(email: "batch-partial-erased@example.com")
        let erasure = try await node.call("POST", "/v1/erasures", token: token("privacy_officer"), json: #"{"pid":"\#(erased)"}"#)
        XCTAssertTrue((200..<300).contains(erasure.status), erasure.text)

        func entry(_ pid: String, _ action: String, source: String = "cmp:bulk") -> String {
            #"{"pid":"\#(pid)","action":"\#(action)","purposes":["product_recs"],"source":"\#(source)","collected_at":"2026-01-02T00:00:00Z"}"#
        }
        let entries = [entry(first, "revoke", source: "+4915177665544"), entry(third, "grant"), entry(erased, "revoke"),
                       entry(second, "revoke")]
        let batch = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                        json: #"{"receipts":[\#(entries.joined(separator: ","))]}"#, headers: ["X-Request-Id": "batch-partial"])
        assertProblem(batch, 404, "unknown_subject")
        XCTAssertTrue(batch.text.contains("receipts[2].pid"), batch.text)
        let stored = batch.json["stored"] as? [[String: Any]] ?? []
        XCTAssertEqual(stored.compactMap { $0["index"] as? Int }, [0, 3], batch.text)
        XCTAssertEqual(stored.compactMap { $0["pid"] as? String }, [first, second], batch.text)

        await XCTAssertEqualAsync(try await activePurposes(first), [])
        await XCTAssertEqualAsync(try await activePurposes(second), [])
        await XCTAssertEqualAsync(try await activePurposes(third), [], "a grant of a failed batch is not stored")
        await XCTAssertEqualAsync(try await searchable(), [], "the revoked vectors left the index")
        let firstHistory = try await node.call("GET", "/v1/subjects/\(first)/consents", token: token("serve"))
        let receipts = firstHistory.json["receipts"] as? [[String: Any]] ?? []
        XCTAssertEqual(receipts.last?["source"] as? String, "redacted:pii_detected")
        XCTAssertEqual(receipts.last?["receipt_id"] as? String, stored.first?["receipt_id"] as? String)

        let audited = try await events(requestID: "batch-partial")
        let byPid = Dictionary(grouping: audited) { $0["pid"] as? String ?? "" }
            .mapValues { $0.map { "\($0["action"]!) \($0["outcome"]!)" } }
        XCTAssertEqual(byPid[first], ["consent.append revoke"])
        XCTAssertEqual(byPid[second], ["consent.append revoke"])
        XCTAssertEqual(byPid[third], ["request.refused refused:unknown_subject"])
        XCTAssertEqual(byPid[erased], ["request.refused refused:unknown_subject"])
        XCTAssertEqual(audited.count, 4, "each subject audited once: \(audited)")

        // Every entry passing: all stored, as one transaction.
        let ok = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                     json: #"{"receipts":[\#(entry(third, "grant")),\#(entry(third, "revoke"))]}"#)
        XCTAssertEqual(ok.status, 201, ok.text)
        XCTAssertEqual(ok.json["count"] as? Int, 2)
        let verify = try await node.call("GET", "/v1/audit/verify", token: token("privacy_officer"))
        XCTAssertEqual(verify.json["valid"] as? Bool, true, verify.text)
        try await assertNowhere("4915177665544")
    }

    // MARK: Refusals are audited

    func test_refusedCallsNamingASubject_areAuditedWithTheirCode_once_andNeverTheValue() async throws {
        try startNode()
        try await defineFeature("last_category", type: "string", purpose: "product_recs")
        let pid = try await register(email: "refusals@example.com")

        func put(_ values: String, as role: String = "ingest", id: String) async throws -> NodeProcess.Response {
            try await node.call("PUT", "/v1/subjects/\(pid)/features", token: token(role), json: #"{"values":\#(values)}"#,
                                headers: ["X-Request-Id": id])
        }

        // Refused by the write itself (audited by the route, once).
        assertProblem(try await put(#"{"last_category":"shoes"}"#, id: "refusal-consent"), 403, "consent_required")
        let consent = try await events(requestID: "refusal-consent")
        XCTAssertEqual(consent.map { "\($0["action"]!) \($0["outcome"]!)" }, ["feature.write refused:consent_required"])
        XCTAssertEqual(consent.first?["pid"] as? String, pid)

        // Refused before the write (audited by the API, once).
        await XCTAssertEqualAsync(try await receipt(pid, "grant", ["product_recs"]).status, 201)
        let email = "leaked.value@example.org"
        assertProblem(try await put(#"{"last_category":"\#(email)"}"#, id: "refusal-pii"), 422, "pii_detected")
        let pii = try await events(requestID: "refusal-pii")
        XCTAssertEqual(pii.map { "\($0["action"]!) \($0["outcome"]!)" }, ["request.refused refused:pii_detected"])
        XCTAssertEqual(pii.first?["pid"] as? String, pid)
        XCTAssertEqual(pii.first?["detail"] as? String, "route=PUT /v1/subjects/{pid}/features")

        assertProblem(try await put(#"{"last_category":7}"#, id: "refusal-type"), 422, "type_mismatch")
        await XCTAssertEqualAsync(try await events(requestID: "refusal-type").map { $0["outcome"] as? String }, ["refused:type_mismatch"])
        assertProblem(try await put(#"{"last_category":"x"}"#, as: "serve", id: "refusal-role"), 403, "forbidden")
        await XCTAssertEqualAsync(try await events(requestID: "refusal-role").map { $0["principal"] as? String }, ["serve"])
        let late = try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
            {"action":"grant","purposes":["analytics"],"source":"t","collected_at":"2099-01-01T00:00:00Z"}
            """, headers: ["X-Request-Id": "refusal-time"])
        assertProblem(late, 422, "invalid_timestamp")
        await XCTAssertEqualAsync(try await events(requestID: "refusal-time").map { $0["outcome"] as? String }, ["refused:invalid_timestamp"])

        // Unauthenticated callers cannot write to the audit log, whatever pid they name.
        let anonymous = try await node.call("PUT", "/v1/subjects/\(pid)/features", token: nil, json: #"{"values":{}}"#,
                                            headers: ["X-Request-Id": "refusal-anonymous"])
        assertProblem(anonymous, 401, "unauthorized")
        await XCTAssertEqualAsync(try await events(requestID: "refusal-anonymous").count, 0)
        // A pid of another region names no subject of this one.
        let foreign = "psn:v1:us:" + String(repeating: "A", count: 43)
        let misdirected = try await node.call("PUT", "/v1/subjects/\(foreign)/features", token: token("ingest"),
                                              json: #"{"values":{"last_category":"x"}}"#,
                                              headers: ["X-Request-Id": "refusal-foreign"])
        XCTAssertEqual(misdirected.status, 421, misdirected.text)
        await XCTAssertEqualAsync(try await events(requestID: "refusal-foreign").count, 0)

        let verify = try await node.call("GET", "/v1/audit/verify", token: token("privacy_officer"))
        XCTAssertEqual(verify.json["valid"] as? Bool, true, verify.text)
        try await assertNowhere(email)
    }

    func test_pendingReidentificationFetch_andItsRefusals_areAudited() async throws {
        try startNode()
        let pid = try await register(email: "reid-refusal@example.com")
        let created = try await node.call("POST", "/v1/reidentifications", token: token("privacy_officer"),
                                          json: #"{"pid":"\#(pid)","reason":"chargeback investigation","ticket":"SEC-77"}"#)
        XCTAssertEqual(created.status, 201, created.text)
        let id = try XCTUnwrap(created.json["id"] as? String)

        let early = try await node.call("GET", "/v1/reidentifications/\(id)", token: token("privacy_officer"),
                                        headers: ["X-Request-Id": "reid-pending"])
        XCTAssertEqual(early.json["status"] as? String, "pending_approval", early.text)
        XCTAssertNil(early.json["identifiers"])
        let pending = try await events(requestID: "reid-pending")
        XCTAssertEqual(pending.map { "\($0["action"]!) \($0["outcome"]!)" }, ["reidentification.fetch pending_approval"])
        XCTAssertEqual(pending.first?["pid"] as? String, pid)

        assertProblem(try await node.call("GET", "/v1/reidentifications/\(id)", token: token("privacy_officer_2"),
                                          headers: ["X-Request-Id": "reid-other"]), 403, "not_requester")
        await XCTAssertEqualAsync(try await events(requestID: "reid-other").map { $0["outcome"] as? String }, ["refused:not_requester"])
        assertProblem(try await node.call("POST", "/v1/reidentifications/\(id)/approvals", token: token("privacy_officer"),
                                          headers: ["X-Request-Id": "reid-self"]), 403, "self_approval")
        await XCTAssertEqualAsync(try await events(requestID: "reid-self").map { $0["outcome"] as? String }, ["refused:self_approval"])
    }

    // MARK: Client text that is kept may not identify

    func test_receiptSource_holdingAnIdentifier_isRefused_storedNowhere_andAudited() async throws {
        try startNode()
        let pid = try await register(email: "source-pii@example.com")
        let phone = "+4915177665544"
        let single = try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"), json: """
            {"action":"grant","purposes":["product_recs"],"source":"\(phone)","collected_at":"2026-01-01T00:00:00Z"}
            """, headers: ["X-Request-Id": "source-single"])
        assertProblem(single, 422, "pii_detected")
        XCTAssertTrue(single.text.contains("source"), single.text)
        XCTAssertFalse(single.text.contains("4915177665544"), "the error never holds the value")
        await XCTAssertEqualAsync(try await events(requestID: "source-single").map { $0["outcome"] as? String }, ["refused:pii_detected"])

        let other = try await register(email: "source-pii-2@example.com")
        func entry(_ pid: String, _ source: String) -> String {
            #"{"pid":"\#(pid)","action":"grant","purposes":["product_recs"],"source":"\#(source)","collected_at":"2026-01-01T00:00:00Z"}"#
        }
        let batch = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                        json: #"{"receipts":[\#(entry(other, "crm:bulk")),\#(entry(pid, "crm:" + phone))]}"#,
                                        headers: ["X-Request-Id": "source-batch"])
        assertProblem(batch, 422, "pii_detected")
        XCTAssertTrue(batch.text.contains("receipts[1].source"), batch.text)
        let audited = try await events(requestID: "source-batch")
        XCTAssertEqual(Set(audited.compactMap { $0["pid"] as? String }), [pid, other], "each subject the refused batch names")
        XCTAssertTrue(audited.allSatisfy { $0["outcome"] as? String == "refused:pii_detected" })

        for subject in [pid, other] {
            let history = try await node.call("GET", "/v1/subjects/\(subject)/consents", token: token("serve"))
            XCTAssertEqual((history.json["receipts"] as? [Any])?.count, 0, "nothing of a refused receipt is stored")
        }
        try await assertNowhere("4915177665544")
    }

    func test_reidentificationTicketAndReason_holdingAnIdentifier_areRefused_andStoredNowhere() async throws {
        try startNode()
        let pid = try await register(email: "ticket-pii@example.com")
        func create(ticket: String, reason: String = "chargeback investigation", id: String) async throws -> NodeProcess.Response {
            try await node.call("POST", "/v1/reidentifications", token: token("privacy_officer"),
                                json: #"{"pid":"\#(pid)","reason":"\#(reason)","ticket":"\#(ticket)"}"#, headers: ["X-Request-Id": id])
        }
        let email = "ticket.holder@example.net"
        let emailTicket = try await create(ticket: email, id: "ticket-email")
        XCTAssertEqual(emailTicket.status, 422, emailTicket.text)
        XCTAssertTrue(emailTicket.text.contains("ticket"), emailTicket.text)
        let phoneTicket = try await create(ticket: "CUST-004915177665544", id: "ticket-phone")
        assertProblem(phoneTicket, 422, "pii_detected")
        XCTAssertTrue(phoneTicket.text.contains("ticket"), phoneTicket.text)
        assertProblem(try await create(ticket: "SEC-1", reason: "caller gave 0151 7766 5544 as callback", id: "reason-phone"),
                      422, "pii_detected")
        for id in ["ticket-email", "ticket-phone", "reason-phone"] {
            let audited = try await events(requestID: id)
            XCTAssertEqual(audited.count, 1, id)
            XCTAssertEqual(audited.first?["pid"] as? String, pid, id)
            XCTAssertTrue((audited.first?["outcome"] as? String ?? "").hasPrefix("refused:"), id)
        }
        for raw in [email, "004915177665544", "0151 7766 5544"] { try await assertNowhere(raw) }

        // A customer id has no shape, but a ticket that is one of this region's is refused too.
        let customer = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                           json: #"{"identifier":{"kind":"customer_id","value":"CUST-4711"},"country":"DE"}"#)
        XCTAssertTrue([200, 201].contains(customer.status), customer.text)
        let customerTicket = try await create(ticket: "CUST-4711", id: "ticket-customer")
        assertProblem(customerTicket, 422, "pii_detected")
        XCTAssertTrue(customerTicket.text.contains("ticket"), customerTicket.text)
        let refused = try await events(requestID: "ticket-customer")
        XCTAssertEqual(refused.map { "\($0["action"]!) \($0["outcome"]!)" }, ["reidentification.request refused:pii_detected"])
        try await assertNowhere("CUST-4711")
        let ordinary = try await create(ticket: "CUST-4712", id: "ticket-ordinary")
        XCTAssertEqual(ordinary.status, 201, "a ticket that is no customer id here is kept: \(ordinary.text)")
    }
}
