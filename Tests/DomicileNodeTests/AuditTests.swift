import DomicileStorage
import DomicileTestSupport
import XCTest

final class AuditTests: NodeTestCase {
    func test_auditChain_recordsAccesses_verifies_andTamperingBreaksIt() async throws {
        try startNode()
        let pid = try await register(email: "audited@example.com")
        try await receipt(pid, "grant", ["product_recs"])
        _ = try await activePurposes(pid)

        let page = try await node.call("GET", "/v1/audit", token: token("privacy_officer"))
        let events = try XCTUnwrap(page.json["events"] as? [[String: Any]])
        XCTAssertEqual(events.map { $0["action"] as? String }, ["subject.register", "consent.append", "consent.read"])
        XCTAssertEqual(events.map { $0["principal"] as? String }, ["ingest", "ingest", "serve"])
        XCTAssertEqual(events[1]["pid"] as? String, pid)
        XCTAssertEqual(events[1]["purpose"] as? String, "product_recs")
        XCTAssertNotNil(events[2]["request_id"] as? String)
        let second = try await node.call("GET", "/v1/audit?after=2&limit=5", token: token("privacy_officer"))
        XCTAssertEqual((second.json["events"] as? [[String: Any]])?.map { $0["seq"] as? Int }, [3])

        let verified = try await node.call("GET", "/v1/audit/verify", token: token("privacy_officer"))
        XCTAssertEqual(verified.json["valid"] as? Bool, true)
        XCTAssertEqual(verified.json["length"] as? Int, 3)
        XCTAssertEqual(verified.json["head"] as? String, events[2]["hash"] as? String)
        let offline = try Binary.run(["audit", "verify", federation.dataDirectory("eu-1")])
        XCTAssertEqual(offline.status, 0, offline.stderr)
        XCTAssertTrue(offline.stdout.contains("valid: 3 events"))

        // Someone edits a row directly in the SQLite file.
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        let original = try XCTUnwrap(try database.fetchOne("SELECT outcome FROM audit_log WHERE seq = 2") { $0.text(0) })
        XCTAssertEqual(original, "grant")
        try database.execute("UPDATE audit_log SET outcome = 'not_found' WHERE seq = 2")
        let broken = try await node.call("GET", "/v1/audit/verify", token: token("privacy_officer"))
        XCTAssertEqual(broken.json["valid"] as? Bool, false)
        XCTAssertEqual(broken.json["first_invalid_seq"] as? Int, 2)
        let offlineBroken = try Binary.run(["audit", "verify", federation.dataDirectory("eu-1")])
        XCTAssertEqual(offlineBroken.status, 1)
        XCTAssertTrue(offlineBroken.stderr.contains("BROKEN at event 2"), offlineBroken.stderr)

        // Deleting the last event is caught too, by the chain's head moving back.
        try database.execute("UPDATE audit_log SET outcome = ? WHERE seq = 2", [original])
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/audit/verify", token: token("privacy_officer")).json["valid"] as? Bool, true)
        try database.execute("DELETE FROM audit_log WHERE seq = 1")
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/audit/verify", token: token("privacy_officer")).json["valid"] as? Bool, false)

        // A receipt edited in place breaks its subject's chain.
        try database.execute("""
            UPDATE consent_receipt_purposes SET purpose = 'analytics' WHERE receipt_id IN (SELECT receipt_id FROM consent_receipts WHERE pid = ?)
            """, [pid])
        let history = try await node.call("GET", "/v1/subjects/\(pid)/consents", token: token("privacy_officer"))
        XCTAssertEqual(history.json["chain_valid"] as? Bool, false)
    }
}
