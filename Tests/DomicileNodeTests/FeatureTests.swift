import DomicileStorage
import DomicileTestSupport
import XCTest

final class FeatureTests: NodeTestCase {
    func defineRecommendationFeatures() async throws {
        try await defineFeature("last_category", type: "string", purpose: "product_recs")
        try await defineFeature("visits", type: "number", purpose: "product_recs")
        try await defineFeature("churn_risk", type: "number", purpose: "analytics")
        // fraud_prevention rests on legitimate interest in every region of the default policy.
        try await defineFeature("fraud_score", type: "number", purpose: "fraud_prevention")
    }

    func test_features_areWrittenOnlyUnderConsent_andWithheldAndPurgedAfterRevoke() async throws {
        try startNode()
        try await defineRecommendationFeatures()
        let pid = try await register(email: "features@example.com")

        assertProblem(try await writeFeatures(pid, #"{"last_category":"shoes","visits":3}"#), 403, "consent_required")
        try await receipt(pid, "grant", ["product_recs"])
        await XCTAssertEqualAsync(try await readFeatures(pid, purpose: "product_recs").features.count, 0, "the refused write stored nothing")

        let written = try await writeFeatures(pid, #"{"last_category":"shoes","visits":3}"#)
        XCTAssertEqual(written.status, 200, written.text)
        XCTAssertEqual(written.json["written"] as? [String], ["last_category", "visits"])
        var served = try await readFeatures(pid, purpose: "product_recs")
        XCTAssertEqual(served.features["last_category"] as? String, "shoes")
        XCTAssertEqual(served.features["visits"] as? Double, 3)
        XCTAssertEqual(served.withheld, [:])

        // All or nothing: one value of a purpose without consent refuses the whole write.
        assertProblem(try await writeFeatures(pid, #"{"last_category":"hats","churn_risk":0.7}"#), 403, "consent_required")
        await XCTAssertEqualAsync(try await readFeatures(pid, purpose: "product_recs").features["last_category"] as? String, "shoes")

        // Another lawful basis in the policy covers fraud_prevention without a receipt.
        let fraud = try await writeFeatures(pid, #"{"fraud_score":0.2}"#)
        XCTAssertEqual(fraud.status, 200, fraud.text)

        // Reads return only the asked purpose.
        served = try await readFeatures(pid, purpose: "fraud_prevention")
        XCTAssertEqual(Set(served.features.keys), ["fraud_score"])

        try await receipt(pid, "revoke", ["product_recs"])
        served = try await readFeatures(pid, purpose: "product_recs")
        XCTAssertEqual(served.features.count, 0)
        XCTAssertEqual(served.withheld, ["last_category": "no_consent", "visits": "no_consent"])
        // Revocation purged the values: granting again does not bring them back.
        try await receipt(pid, "grant", ["product_recs"])
        served = try await readFeatures(pid, purpose: "product_recs")
        XCTAssertEqual(served.features.count, 0)
        XCTAssertEqual(served.withheld, [:])
        await XCTAssertEqualAsync(try await readFeatures(pid, purpose: "fraud_prevention").features.count, 1,
                                  "revoking product_recs leaves other purposes alone")

        // A GPC signal purges the gpc purposes' features too, in the same transaction as its receipt.
        await XCTAssertEqualAsync(try await writeFeatures(pid, #"{"visits":4}"#).status, 200)
        let gpc = try await receipt(pid, "gpc", [])
        XCTAssertEqual(gpc.status, 201, gpc.text)
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        let remaining = try database.fetchAll("SELECT purpose FROM features WHERE pid = ?", [pid]) { $0.text(0) }
        XCTAssertEqual(remaining, ["fraud_prevention"])

        let events = try await auditEvents()
        let gpcEvent = try XCTUnwrap(events.last { $0["action"] as? String == "consent.append" })
        XCTAssertEqual(gpcEvent["detail"] as? String, "purged_features=1,purged_vectors=0")
        XCTAssertTrue(events.contains { $0["action"] as? String == "feature.write" && $0["outcome"] as? String == "refused:consent_required" },
                      "refused writes are audited")
    }

    func test_features_refuseBadInput_withTypedErrors() async throws {
        try startNode()
        try await defineRecommendationFeatures()
        let pid = try await register(email: "bad-input@example.com")
        try await receipt(pid, "grant", ["product_recs"])

        let pii = try await writeFeatures(pid, #"{"last_category":"write to Anna.Schmidt@example.de"}"#)
        assertProblem(pii, 422, "pii_detected")
        XCTAssertTrue(pii.text.contains("last_category"))
        XCTAssertFalse(pii.text.lowercased().contains("anna.schmidt"), "the value never appears in an error")
        assertProblem(try await writeFeatures(pid, #"{"last_category":"+49 151 1234567"}"#), 422, "pii_detected")
        assertProblem(try await writeFeatures(pid, #"{"shoe_size":42}"#), 422, "unknown_feature")
        assertProblem(try await writeFeatures(pid, #"{"visits":"three"}"#), 422, "type_mismatch")
        assertProblem(try await writeFeatures(pid, #"{"visits":[3]}"#), 422, "type_mismatch")
        assertProblem(try await writeFeatures(pid, #"{}"#), 422, "invalid_request")
        assertProblem(try await writeFeatures("psn:v1:us:" + String(repeating: "B", count: 42) + "A", #"{"visits":1}"#), 421, "misdirected")

        let noPurpose = try await node.call("GET", "/v1/subjects/\(pid)/features", token: token("serve"))
        assertProblem(noPurpose, 400, "purpose_required")
        let unknownPurpose = try await node.call("GET", "/v1/subjects/\(pid)/features?purpose=telepathy", token: token("serve"))
        assertProblem(unknownPurpose, 422, "unknown_purpose")

        let badDefinition = try await node.call("PUT", "/v1/feature-definitions/x", token: token("admin"),
                                                json: #"{"type":"string","purpose":"telepathy","ttl_seconds":60,"classification":"behavioral"}"#)
        assertProblem(badDefinition, 422, "unknown_purpose")
        let badType = try await node.call("PUT", "/v1/feature-definitions/x", token: token("admin"),
                                          json: #"{"type":"date","purpose":"analytics","ttl_seconds":60,"classification":"behavioral"}"#)
        assertProblem(badType, 422, "invalid_request")
        let notAdmin = try await node.call("PUT", "/v1/feature-definitions/x", token: token("ingest"),
                                           json: #"{"type":"string","purpose":"analytics","ttl_seconds":60,"classification":"behavioral"}"#)
        assertProblem(notAdmin, 403, "forbidden")

        // A definition holding values keeps its type and purpose.
        await XCTAssertEqualAsync(try await writeFeatures(pid, #"{"visits":1}"#).status, 200)
        let retyped = try await node.call("PUT", "/v1/feature-definitions/visits", token: token("admin"),
                                          json: #"{"type":"string","purpose":"product_recs","ttl_seconds":60,"classification":"behavioral"}"#)
        assertProblem(retyped, 409, "definition_in_use")
        let listed = try await node.call("GET", "/v1/feature-definitions", token: token("analyst"))
        let definitions = try XCTUnwrap(listed.json["definitions"] as? [[String: Any]])
        XCTAssertEqual(definitions.first { $0["name"] as? String == "visits" }?["type"] as? String, "number")
    }

    func test_features_pastTheirTTLOrTheirConsentsExpiry_areWithheld_thenSwept() async throws {
        try startNode { _, config in config["limits"] = ["retention_sweep_interval_ms": 300] }
        try await defineFeature("last_category", type: "string", purpose: "product_recs", ttlSeconds: 1)
        try await defineFeature("newsletter_topic", type: "string", purpose: "marketing_email", ttlSeconds: 3_600)
        let pid = try await register(email: "ttl@example.com")
        try await receipt(pid, "grant", ["product_recs"])
        try await receipt(pid, "grant", ["marketing_email"], expiresAt: Self.rfc3339(secondsFromNow: 1.5))
        await XCTAssertEqualAsync(try await writeFeatures(pid, #"{"last_category":"shoes","newsletter_topic":"sneakers"}"#).status, 200)
        await XCTAssertEqualAsync(try await readFeatures(pid, purpose: "product_recs").features.count, 1)

        // Past the TTL the value is withheld as expired even before the sweeper gets to it.
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        try await waitUntil("the value expires") {
            let served = try await readFeatures(pid, purpose: "product_recs")
            return served.withheld["last_category"] == "expired" || (served.features.isEmpty && served.withheld.isEmpty)
        }
        // The sweeper deletes expired values and the features of the expired marketing grant.
        try await waitUntil("the sweeper deletes both values") {
            try database.fetchOne("SELECT count(*) FROM features WHERE pid = ?", [pid]) { $0.int64(0) } == 0
        }
        let served = try await readFeatures(pid, purpose: "marketing_email")
        XCTAssertEqual(served.withheld, ["newsletter_topic": "no_consent"])
        let sweeps = try await auditEvents().filter { $0["action"] as? String == "retention.sweep" }
        XCTAssertFalse(sweeps.isEmpty)
        XCTAssertTrue(sweeps.allSatisfy { $0["principal"] as? String == "system" && $0["pid"] == nil }, "sweeps are audited as counts")
        let details = sweeps.compactMap { $0["detail"] as? String }.joined(separator: ";")
        XCTAssertTrue(details.contains("expired_features=1"), details)
        XCTAssertTrue(details.contains("expired_grants=1") && details.contains("purged_features=1"), details)
    }

    func waitUntil(_ what: String, seconds: Double = 10, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTFail("timed out waiting until \(what)")
    }
}
