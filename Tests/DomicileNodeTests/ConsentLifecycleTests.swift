import DomicileTestSupport
import XCTest

final class ConsentLifecycleTests: NodeTestCase {
    func test_consent_grantRevokeGPCAndExpiry_changeTheActiveConsent() async throws {
        try startNode()
        let pid = try await register(email: "lifecycle@example.com")
        await XCTAssertEqualAsync(try await activePurposes(pid), [])

        let grant = try await receipt(pid, "grant", ["product_recs", "marketing_email", "analytics"])
        XCTAssertEqual(grant.status, 201, grant.text)
        XCTAssertEqual(grant.json["seq"] as? Int, 1)
        XCTAssertEqual(grant.json["prev_hash"] as? String, String(repeating: "0", count: 64))
        await XCTAssertEqualAsync(try await activePurposes(pid), ["analytics", "marketing_email", "product_recs"])

        await XCTAssertEqualAsync(try await receipt(pid, "revoke", ["marketing_email"]).status, 201)
        await XCTAssertEqualAsync(try await activePurposes(pid), ["analytics", "product_recs"])

        // GPC revokes every purpose the policy marks gpc (product_recs, marketing_email), not analytics.
        let gpc = try await receipt(pid, "gpc", [])
        XCTAssertEqual(gpc.status, 201, gpc.text)
        await XCTAssertEqualAsync(try await activePurposes(pid), ["analytics"])

        // A grant that expires in two seconds is active, then is not.
        let expiring = try await receipt(pid, "grant", ["product_recs"], expiresAt: Self.rfc3339(secondsFromNow: 2))
        XCTAssertEqual(expiring.status, 201, expiring.text)
        await XCTAssertEqualAsync(try await activePurposes(pid), ["analytics", "product_recs"])
        try await Task.sleep(nanoseconds: 2_500_000_000)
        await XCTAssertEqualAsync(try await activePurposes(pid), ["analytics"])

        let subject = try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve"))
        XCTAssertEqual(subject.json["active_purposes"] as? [String], ["analytics"])

        let history = try await node.call("GET", "/v1/subjects/\(pid)/consents", token: token("privacy_officer"))
        XCTAssertEqual(history.json["chain_valid"] as? Bool, true)
        let receipts = try XCTUnwrap(history.json["receipts"] as? [[String: Any]])
        XCTAssertEqual(receipts.map { $0["seq"] as? Int }, [1, 2, 3, 4])
        XCTAssertEqual(receipts.map { $0["action"] as? String }, ["grant", "revoke", "gpc", "grant"])
        for (previous, next) in zip(receipts, receipts.dropFirst()) {
            XCTAssertEqual(next["prev_hash"] as? String, previous["hash"] as? String, "each receipt links to the one before")
        }
    }

    func test_registration_findsTheSameSubjectByAnySpellingOfItsIdentifier() async throws {
        try startNode()
        let first = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                        json: #"{"identifier":{"kind":"email","value":"  Carol@Example.COM "},"region":"eu"}"#)
        XCTAssertEqual(first.status, 201)
        XCTAssertEqual(first.json["created"] as? Bool, true)
        let again = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                        json: #"{"identifier":{"kind":"email","value":"carol@example.com"},"country":"FR"}"#)
        XCTAssertEqual(again.status, 200)
        XCTAssertEqual(again.json["created"] as? Bool, false)
        XCTAssertEqual(again.json["pid"] as? String, first.json["pid"] as? String)
        let lookup = try await node.call("POST", "/v1/subjects/lookup", token: token("serve"),
                                         json: #"{"identifier":{"kind":"email","value":"CAROL@example.com"}}"#)
        XCTAssertEqual(lookup.json["pid"] as? String, first.json["pid"] as? String)
        let missing = try await node.call("POST", "/v1/subjects/lookup", token: token("serve"),
                                          json: #"{"identifier":{"kind":"email","value":"nobody@example.com"}}"#)
        assertProblem(missing, 404, "unknown_subject")
    }

    func test_batchIngestion_isAllOrNothing() async throws {
        try startNode()
        let first = try await register(email: "batch-one@example.com")
        let second = try await register(email: "batch-two@example.com")
        let unknown = "psn:v1:eu:" + String(repeating: "A", count: 43)
        func entry(_ pid: String, _ purpose: String = "product_recs") -> String {
            #"{"pid":"\#(pid)","action":"grant","purposes":["\#(purpose)"],"source":"crm:bulk","collected_at":"2026-01-02T00:00:00Z"}"#
        }
        let failing = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                          json: #"{"receipts":[\#(entry(first)),\#(entry(second)),\#(entry(unknown))]}"#)
        assertProblem(failing, 404, "unknown_subject")
        XCTAssertTrue(failing.text.contains("receipts[2]"))
        await XCTAssertEqualAsync(try await activePurposes(first), [], "nothing of a failed batch is stored")

        let invalid = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                          json: #"{"receipts":[\#(entry(first)),\#(entry(second, "teleportation"))]}"#)
        assertProblem(invalid, 422, "unknown_purpose")
        XCTAssertTrue(invalid.text.contains("receipts[1]"))

        let ok = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                     json: #"{"receipts":[\#(entry(first)),\#(entry(second)),\#(entry(first, "analytics"))]}"#)
        XCTAssertEqual(ok.status, 201, ok.text)
        XCTAssertEqual(ok.json["count"] as? Int, 3)
        XCTAssertEqual((ok.json["receipts"] as? [[String: Any]])?.map { $0["seq"] as? Int }, [1, 1, 2])
        await XCTAssertEqualAsync(try await activePurposes(first), ["analytics", "product_recs"])
        await XCTAssertEqualAsync(try await activePurposes(second), ["product_recs"])
    }
}
