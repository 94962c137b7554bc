import DomicileTestSupport
import XCTest

final class ReidentificationTests: NodeTestCase {
    func call(_ method: String, _ path: String, as role: String, json: String? = nil) async throws -> NodeProcess.Response {
        try await node.call(method, path, token: token(role), json: json)
    }

    func test_reidentification_needsTwoOtherApprovers_andReleasesOnce() async throws {
        try startNode()
        let pid = try await register(email: "  Reid.Subject@Example.com")
        let created = try await call("POST", "/v1/reidentifications", as: "privacy_officer",
                                     json: #"{"pid":"\#(pid)","reason":"chargeback fraud investigation","ticket":"SEC-4711"}"#)
        XCTAssertEqual(created.status, 201, created.text)
        XCTAssertEqual(created.json["status"] as? String, "pending_approval")
        let id = try XCTUnwrap(created.json["id"] as? String)
        let approvals = "/v1/reidentifications/\(id)/approvals"

        assertProblem(try await call("POST", approvals, as: "privacy_officer"), 403, "self_approval")
        let first = try await call("POST", approvals, as: "privacy_officer_2")
        XCTAssertEqual(first.status, 200, first.text)
        XCTAssertEqual(first.json["status"] as? String, "pending_approval")
        assertProblem(try await call("POST", approvals, as: "privacy_officer_2"), 409, "already_approved")

        // Before the second approval the requester sees no identifier.
        let early = try await call("GET", "/v1/reidentifications/\(id)", as: "privacy_officer")
        XCTAssertEqual(early.json["status"] as? String, "pending_approval")
        XCTAssertNil(early.json["identifiers"])
        assertProblem(try await call("GET", "/v1/reidentifications/\(id)", as: "privacy_officer_2"), 403, "not_requester")
        assertProblem(try await call("GET", "/v1/reidentifications/\(id)", as: "serve"), 403, "forbidden")

        let second = try await call("POST", approvals, as: "privacy_officer_3")
        XCTAssertEqual(second.json["status"] as? String, "approved")
        assertProblem(try await call("POST", approvals, as: "privacy_officer_3"), 409, "already_approved")

        let released = try await call("GET", "/v1/reidentifications/\(id)", as: "privacy_officer")
        XCTAssertEqual(released.json["status"] as? String, "approved")
        let identifiers = try XCTUnwrap(released.json["identifiers"] as? [[String: String]])
        XCTAssertEqual(identifiers, [["kind": "email", "value": "reid.subject@example.com"]])
        let again = try await call("GET", "/v1/reidentifications/\(id)", as: "privacy_officer")
        XCTAssertEqual(again.json["status"] as? String, "fulfilled")
        XCTAssertNil(again.json["identifiers"], "identifiers are released exactly once")

        let steps = try await auditEvents().filter { ($0["action"] as? String ?? "").hasPrefix("reidentification.") }
        XCTAssertEqual(steps.map { "\($0["action"]!) \($0["principal"]!) \($0["outcome"]!)" }, [
            "reidentification.request privacy_officer pending_approval",
            "reidentification.approve privacy_officer refused:self_approval",
            "reidentification.approve privacy_officer_2 pending_approval",
            "reidentification.approve privacy_officer_2 refused:already_approved",
            "reidentification.fetch privacy_officer pending_approval",
            "reidentification.fetch privacy_officer_2 refused:not_requester",
            "reidentification.approve privacy_officer_3 approved",
            "reidentification.approve privacy_officer_3 refused:already_approved",
            "reidentification.release privacy_officer released",
            "reidentification.fetch privacy_officer fulfilled",
        ])
        XCTAssertTrue(steps.allSatisfy { $0["pid"] as? String == pid })
        let log = try await auditEvents().description
        XCTAssertFalse(log.contains("reid.subject"), "the audit log never holds the identifier")
    }

    /// A HEAD would run the fetch and drop its body: the one-time release
    /// spent on an answer nobody reads. It is 405; the GET still releases once.
    func test_head_ofAnApprovedReidentification_releasesNothing() async throws {
        try startNode()
        let pid = try await register(email: "head.subject@example.com")
        let created = try await call("POST", "/v1/reidentifications", as: "privacy_officer",
                                     json: #"{"pid":"\#(pid)","reason":"chargeback fraud investigation","ticket":"SEC-4712"}"#)
        let id = try XCTUnwrap(created.json["id"] as? String, created.text)
        for approver in ["privacy_officer_2", "privacy_officer_3"] {
            await XCTAssertEqualAsync(try await call("POST", "/v1/reidentifications/\(id)/approvals", as: approver).status, 200)
        }

        let connection = try node.rawConnection()
        connection.send("HEAD /v1/reidentifications/\(id) HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(token("privacy_officer"))\r\n\r\n")
        let head = try connection.readResponseHead()
        XCTAssertEqual(head.status, 405)
        XCTAssertEqual(head.header("allow"), "GET")

        let released = try await call("GET", "/v1/reidentifications/\(id)", as: "privacy_officer")
        XCTAssertEqual(released.json["status"] as? String, "approved", released.text)
        XCTAssertEqual(released.json["identifiers"] as? [[String: String]], [["kind": "email", "value": "head.subject@example.com"]])
        let again = try await call("GET", "/v1/reidentifications/\(id)", as: "privacy_officer")
        XCTAssertNil(again.json["identifiers"])
        let releases = try await auditEvents().filter { $0["action"] as? String == "reidentification.release" }
        XCTAssertEqual(releases.count, 1, "released exactly once")
    }

    func test_reidentification_refusesBadRequests() async throws {
        try startNode()
        let pid = try await register(email: "reid-bad@example.com")
        let pii = try await call("POST", "/v1/reidentifications", as: "privacy_officer",
                                 json: #"{"pid":"\#(pid)","reason":"customer reid-bad@example.com called","ticket":"SEC-1"}"#)
        assertProblem(pii, 422, "pii_detected")
        assertProblem(try await call("POST", "/v1/reidentifications", as: "privacy_officer",
                                     json: #"{"pid":"\#(pid)","reason":"","ticket":"SEC-1"}"#), 422, "invalid_request")
        assertProblem(try await call("POST", "/v1/reidentifications", as: "privacy_officer",
                                     json: #"{"pid":"\#(pid)","reason":"audit","ticket":"has spaces"}"#), 422, "invalid_request")
        let unknown = "psn:v1:eu:" + String(repeating: "B", count: 42) + "A"
        assertProblem(try await call("POST", "/v1/reidentifications", as: "privacy_officer",
                                     json: #"{"pid":"\#(unknown)","reason":"audit","ticket":"SEC-1"}"#), 404, "unknown_subject")
        assertProblem(try await call("POST", "/v1/reidentifications", as: "ingest",
                                     json: #"{"pid":"\#(pid)","reason":"audit","ticket":"SEC-1"}"#), 403, "forbidden")
        assertProblem(try await call("POST", "/v1/reidentifications/ri_nope/approvals", as: "privacy_officer_2"), 404,
                      "unknown_reidentification")
    }
}

final class AccessControlLimitTests: NodeTestCase {
    func test_readsAreRateLimitedPerPrincipal_withRetryAfter() async throws {
        try startNode { _, config in config["limits"] = ["read_rate_per_second": 1, "read_burst": 3] }
        let pid = try await register(email: "limited@example.com")
        var statuses: [Int] = []
        for _ in 0..<5 {
            statuses.append(try await node.call("GET", "/v1/subjects/\(pid)/consent", token: token("serve")).status)
        }
        XCTAssertEqual(statuses.prefix(3), [200, 200, 200])
        XCTAssertEqual(statuses.last, 429)
        let limited = try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve"))
        assertProblem(limited, 429, "rate_limited")
        XCTAssertEqual(limited.headers["retry-after"], "1")
        // Another principal has its own bucket; writes are not limited.
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/subjects/\(pid)", token: token("privacy_officer")).status, 200)
        await XCTAssertEqualAsync(try await receipt(pid, "grant", ["analytics"]).status, 201)
        try await Task.sleep(nanoseconds: 1_100_000_000)
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/subjects/\(pid)/consent", token: token("serve")).status, 200,
                                  "the bucket refills")
    }

    func test_touchingTooManySubjectsAMinute_isRecordedAsAnAnomaly() async throws {
        try startNode { _, config in config["limits"] = ["distinct_subjects_per_minute": 3] }
        var pids: [String] = []
        // Seven subjects: however a minute boundary splits the reads, one window sees more than three.
        for index in 0..<7 { pids.append(try await register(email: "anomaly\(index)@example.com")) }
        // Registering is ingestion, not reading: no anomaly yet. Reading the same subject often is fine too.
        for _ in 0..<5 { _ = try await node.call("GET", "/v1/subjects/\(pids[0])", token: token("serve")) }
        let early = try await auditEvents()
        XCTAssertFalse(early.contains { $0["action"] as? String == "access.anomaly" })
        for pid in pids { _ = try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve")) }

        var anomalies: [[String: Any]] = []
        for _ in 0..<50 where anomalies.isEmpty {
            anomalies = try await auditEvents().filter { $0["action"] as? String == "access.anomaly" }
            if anomalies.isEmpty { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        XCTAssertTrue((1...2).contains(anomalies.count), "flagged once per principal and minute")
        XCTAssertEqual(anomalies.first?["principal"] as? String, "serve")
        XCTAssertEqual(anomalies.first?["outcome"] as? String, "flagged")
        XCTAssertNil(anomalies.first?["pid"])
        let metrics = try await node.call("GET", "/metrics", token: nil).text
        XCTAssertTrue(metrics.contains(#"domicile_access_anomalies_total{principal="serve"} \#(anomalies.count)"#), metrics)
    }
}
