import DomicileTestSupport
import XCTest

final class AccessControlTests: NodeTestCase {
    func test_everyRoleBoundary_answers401Or403() async throws {
        try startNode()
        let pid = try await register(email: "roles@example.com")
        let receipt = #"{"action":"grant","purposes":["product_recs"],"source":"t","collected_at":"2026-01-01T00:00:00Z"}"#
        let routes: [(String, String, String?, Set<String>)] = [
            ("GET", "/v1/cluster", nil, []),
            ("GET", "/v1/policy", nil, []),
            ("POST", "/v1/subjects", #"{"identifier":{"kind":"email","value":"r2@example.com"},"country":"DE"}"#, ["ingest"]),
            ("POST", "/v1/subjects/lookup", #"{"identifier":{"kind":"email","value":"roles@example.com"}}"#, ["ingest", "serve"]),
            ("GET", "/v1/subjects/\(pid)", nil, ["serve", "privacy_officer"]),
            ("POST", "/v1/subjects/\(pid)/consents", receipt, ["ingest"]),
            ("GET", "/v1/subjects/\(pid)/consents", nil, ["serve", "privacy_officer"]),
            ("GET", "/v1/subjects/\(pid)/consent", nil, ["serve"]),
            ("POST", "/v1/consents/batch", #"{"receipts":[]}"#, ["ingest"]),
            ("POST", "/v1/subjects/batch", #"{"subjects":[]}"#, ["ingest"]),
            ("GET", "/v1/collections/recs", nil, ["admin", "serve"]),
            ("POST", "/v1/collections/recs/vectors/batch", #"{"vectors":[]}"#, ["ingest"]),
            ("GET", "/v1/audit", nil, ["privacy_officer"]),
            ("GET", "/v1/audit/verify", nil, ["privacy_officer"]),
            ("PUT", "/v1/feature-definitions/visits",
             #"{"type":"number","purpose":"analytics","ttl_seconds":60,"classification":"behavioral"}"#, ["admin"]),
            ("GET", "/v1/feature-definitions", nil, []),
            ("PUT", "/v1/subjects/\(pid)/features", #"{"values":{"visits":1}}"#, ["ingest"]),
            ("GET", "/v1/subjects/\(pid)/features?purpose=analytics", nil, ["serve"]),
            ("PUT", "/v1/contracts/visit", #"{"fields":{"n":{"type":"number","feature":"visits"}}}"#, ["admin"]),
            ("GET", "/v1/contracts", nil, []),
            ("POST", "/v1/events/visit", #"{"pid":"\#(pid)","fields":{"n":2}}"#, ["ingest"]),
            ("POST", "/v1/reidentifications", #"{"pid":"\#(pid)","reason":"audit","ticket":"T-1"}"#, ["privacy_officer"]),
            ("POST", "/v1/reidentifications/ri_x/approvals", nil, ["privacy_officer"]),
            ("GET", "/v1/reidentifications/ri_x", nil, ["privacy_officer"]),
            ("GET", "/v1/erasures", nil, ["privacy_officer"]),
            ("GET", "/v1/erasures/er_x", nil, ["privacy_officer"]),
            ("POST", "/v1/erasures", #"{"pid":"\#(pid)"}"#, ["privacy_officer"]),
        ]
        let roles = ["ingest", "serve", "analyst", "privacy_officer", "admin", "node"]
        for (method, path, body, allowed) in routes {
            assertProblem(try await node.call(method, path, token: nil, json: body), 401, "unauthorized")
            let wrong = try await node.call(method, path, token: "not-a-valid-token", json: body)
            assertProblem(wrong, 401, "unauthorized")
            XCTAssertEqual(wrong.headers["www-authenticate"], #"Bearer realm="domicile""#)
            for role in roles {
                let response = try await node.call(method, path, token: token(role), json: body)
                if allowed.isEmpty || allowed.contains(role) {
                    // Allowed through: the role check passed (a business rule may still answer 403, e.g. consent_required).
                    XCTAssertNotEqual(response.status, 401, "\(role) may call \(method) \(path)")
                    XCTAssertNotEqual(response.json["code"] as? String, "forbidden", "\(role) may call \(method) \(path): \(response.text)")
                } else {
                    assertProblem(response, 403, "forbidden")
                }
            }
        }
        // Unauthenticated by design: health, readiness, metrics.
        for path in ["/healthz", "/readyz", "/metrics"] {
            await XCTAssertEqualAsync(try await node.call("GET", path, token: nil).status, 200, path)
        }
    }

    func test_anotherRegionsPidOrCountry_isMisdirected() async throws {
        try startNode()
        let usPid = "psn:v1:us:" + String(repeating: "B", count: 42) + "A"
        for (method, path, body) in [("GET", "/v1/subjects/\(usPid)", nil as String?),
                                     ("GET", "/v1/subjects/\(usPid)/consent", nil),
                                     ("GET", "/v1/subjects/\(usPid)/consents", nil),
                                     ("POST", "/v1/subjects/\(usPid)/consents",
                                      #"{"action":"grant","purposes":["product_recs"],"source":"t","collected_at":"2026-01-01T00:00:00Z"}"#)] {
            let role = method == "POST" ? "ingest" : "serve"
            let response = try await node.call(method, path, token: token(role), json: body)
            assertProblem(response, 421, "misdirected")
            XCTAssertEqual(response.json["home_region"] as? String, "us", path)
            XCTAssertNotNil(response.json["nodes"] as? [Any])
        }
        let byCountry = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                            json: #"{"identifier":{"kind":"email","value":"usa@example.com"},"country":"US"}"#)
        assertProblem(byCountry, 421, "misdirected")
        XCTAssertEqual(byCountry.json["home_region"] as? String, "us")
        let byRegion = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                           json: #"{"identifier":{"kind":"phone","value":"+1 415 555 0100"},"region":"us"}"#)
        assertProblem(byRegion, 421, "misdirected")
        let batch = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                        json: #"{"receipts":[{"pid":"\#(usPid)","action":"grant","purposes":["product_recs"],"source":"t","collected_at":"2026-01-01T00:00:00Z"}]}"#)
        assertProblem(batch, 421, "misdirected")
    }

    /// A pid of a region the policy does not have is malformed (400), not
    /// misdirected: no node anywhere could hold it.
    func test_aPidOfARegionOutsideThePolicy_isInvalid() async throws {
        try startNode()
        let strayPid = "psn:v1:zz:" + String(repeating: "B", count: 42) + "A"
        for (method, path, role, body) in [("GET", "/v1/subjects/\(strayPid)", "serve", nil as String?),
                                           ("GET", "/v1/subjects/\(strayPid)/consent", "serve", nil),
                                           ("POST", "/v1/subjects/\(strayPid)/consents", "ingest",
                                            #"{"action":"grant","purposes":["product_recs"],"source":"t","collected_at":"2026-01-01T00:00:00Z"}"#),
                                           ("POST", "/v1/consents/batch", "ingest",
                                            #"{"receipts":[{"pid":"\#(strayPid)","action":"grant","purposes":["product_recs"],"source":"t","collected_at":"2026-01-01T00:00:00Z"}]}"#),
                                           ("POST", "/v1/erasures", "privacy_officer", #"{"pid":"\#(strayPid)"}"#)] {
            let response = try await node.call(method, path, token: token(role), json: body)
            assertProblem(response, 400, "invalid_pid")
        }
    }

    func test_invalidInput_isRefusedWithTypedErrors_andChangesNothing() async throws {
        try startNode()
        let pid = try await register(email: "input@example.com")
        let ingest = token("ingest")
        func post(_ path: String, _ json: String) async throws -> NodeProcess.Response {
            try await node.call("POST", path, token: ingest, json: json)
        }
        let subjects: [(String, Int, String)] = [
            (#"{"identifier":{"kind":"email","value":"a@b.com"},"region":"mars"}"#, 422, "unknown_region"),
            (#"{"identifier":{"kind":"email","value":"a@b.com"},"country":"XX"}"#, 422, "unknown_region"),
            (#"{"identifier":{"kind":"email","value":"a@b.com"},"country":"JP"}"#, 422, "unknown_region"),
            (#"{"identifier":{"kind":"email","value":"a@b.com"},"country":"germany"}"#, 422, "unknown_region"),
            (#"{"identifier":{"kind":"email","value":"not-an-address"},"country":"DE"}"#, 422, "invalid_identifier"),
            (#"{"identifier":{"kind":"phone","value":"0151 1234567"},"country":"DE"}"#, 422, "invalid_identifier"),
            (#"{"identifier":{"kind":"customer_id","value":""},"country":"DE"}"#, 422, "invalid_identifier"),
            (#"{"identifier":{"kind":"ssn","value":"123"},"country":"DE"}"#, 422, "invalid_identifier"),
            (#"{"identifier":{"kind":"email","value":"a@b.com"}}"#, 422, "invalid_request"),
            (#"{"identifier":{"kind":"email","value":"a@b.com"},"country":"DE","region":"eu"}"#, 422, "invalid_request"),
            (#"{"identifier":{"kind":"email"},"country":"DE"}"#, 400, "invalid_json"),
            (#"{"identifier":"#, 400, "invalid_json"),
        ]
        for (body, status, code) in subjects { assertProblem(try await post("/v1/subjects", body), status, code) }

        func receipt(_ fields: String) -> String { "{\(fields)}" }
        let receipts: [(String, Int, String)] = [
            (#""action":"grant","purposes":["teleportation"],"source":"t","collected_at":"2026-01-01T00:00:00Z""#, 422, "unknown_purpose"),
            (#""action":"grant","purposes":["Product Recs"],"source":"t","collected_at":"2026-01-01T00:00:00Z""#, 422, "unknown_purpose"),
            (#""action":"hug","purposes":["product_recs"],"source":"t","collected_at":"2026-01-01T00:00:00Z""#, 422, "invalid_request"),
            (#""action":"grant","purposes":[],"source":"t","collected_at":"2026-01-01T00:00:00Z""#, 422, "invalid_request"),
            (#""action":"grant","purposes":["product_recs"],"basis":"contract","source":"t","collected_at":"2026-01-01T00:00:00Z""#, 422, "basis_not_allowed"),
            (#""action":"grant","purposes":["product_recs"],"source":"t","collected_at":"yesterday""#, 422, "invalid_timestamp"),
            (#""action":"grant","purposes":["product_recs"],"source":"t","collected_at":"2099-01-01T00:00:00Z""#, 422, "invalid_timestamp"),
            (#""action":"grant","purposes":["product_recs"],"source":"t","collected_at":"2026-01-02T00:00:00Z","expires_at":"2026-01-01T00:00:00Z""#, 422, "invalid_timestamp"),
            (#""action":"grant","purposes":["product_recs"],"source":"who@example.com","collected_at":"2026-01-01T00:00:00Z""#, 422, "pii_detected"),
            (#""action":"grant","purposes":["product_recs"],"source":"web portal","collected_at":"2026-01-01T00:00:00Z""#, 422, "invalid_request"),
            (#""action":"gpc","purposes":["analytics"],"source":"t","collected_at":"2026-01-01T00:00:00Z""#, 422, "invalid_request"),
        ]
        for (fields, status, code) in receipts {
            assertProblem(try await post("/v1/subjects/\(pid)/consents", receipt(fields)), status, code)
        }
        assertProblem(try await post("/v1/subjects/psn:v1:eu:short/consents", receipt(receipts[0].0)), 400, "invalid_pid")
        assertProblem(try await node.call("GET", "/v1/subjects/not-a-pid", token: token("serve")), 400, "invalid_pid")
        let unknownPid = "psn:v1:eu:" + String(repeating: "C", count: 42) + "A"
        assertProblem(try await node.call("GET", "/v1/subjects/\(unknownPid)", token: token("serve")), 404, "unknown_subject")
        assertProblem(try await node.call("GET", "/v1/nothing-here", token: token("serve")), 404, "not_found")
        assertProblem(try await node.call("DELETE", "/v1/subjects/\(pid)", token: token("serve")), 405, "method_not_allowed")
        assertProblem(try await node.call("GET", "/v1/audit?limit=0", token: token("privacy_officer")), 422, "invalid_request")

        let history = try await node.call("GET", "/v1/subjects/\(pid)/consents", token: token("serve"))
        XCTAssertEqual((history.json["receipts"] as? [Any])?.count, 0, "no refused receipt was stored")
    }
}
