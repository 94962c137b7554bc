import DomicileModel
import DomicileTestSupport
import Foundation
import XCTest

final class ContractTests: NodeTestCase {
    func definePageView() async throws {
        for name in ["last_category", "last_seen_day", "last_seen_hour", "network", "country"] {
            try await defineFeature(name, type: "string", purpose: "product_recs")
        }
        try await defineFeature("basket_value", type: "number", purpose: "product_recs")
        let contract = try await node.call("PUT", "/v1/contracts/page_view", token: token("admin"), json: """
            {"fields":{
              "category":{"type":"string","feature":"last_category"},
              "seen_at":{"type":"timestamp","transform":"bucket_day","feature":"last_seen_day"},
              "seen_hour":{"type":"timestamp","transform":"bucket_hour","feature":"last_seen_hour"},
              "ip":{"type":"string","transform":"ip_prefix","feature":"network"},
              "location":{"type":"string","transform":"coarse_geo","feature":"country"},
              "basket":{"type":"number","feature":"basket_value"},
              "session":{"type":"string","transform":"drop"},
              "email":{"type":"string","identity":true,"transform":"drop"}
            }}
            """)
        XCTAssertEqual(contract.status, 201, contract.text)
    }

    func event(_ pid: String, _ fields: String) async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/events/page_view", token: token("ingest"), json: #"{"pid":"\#(pid)","fields":\#(fields)}"#)
    }

    func test_events_areMinimizedByEveryTransformBeforeStorage() async throws {
        try startNode()
        try await definePageView()
        let pid = try await register(email: "events@example.com")
        try await receipt(pid, "grant", ["product_recs"])

        let raw = ["203.0.113.77", "2001:db8:abcd:12:1::7", "2026-11-22T13:45:12Z", "2026-11-22T13:45:12.345Z", "DE-BE/Berlin/10115",
                   "sess-8f1c2e", "events@example.com"]
        let accepted = try await event(pid, """
            {"category":"boots","seen_at":"\(raw[2])","seen_hour":"\(raw[3])","ip":"\(raw[0])","location":"\(raw[4])",
             "basket":59.9,"session":"\(raw[5])","email":"\(raw[6])"}
            """)
        XCTAssertEqual(accepted.status, 202, accepted.text)
        XCTAssertEqual(accepted.json["features_updated"] as? [String],
                       ["basket_value", "country", "last_category", "last_seen_day", "last_seen_hour", "network"])
        var served = try await readFeatures(pid, purpose: "product_recs").features
        XCTAssertEqual(served["last_category"] as? String, "boots")
        XCTAssertEqual(served["last_seen_day"] as? String, "2026-11-22")
        XCTAssertEqual(served["last_seen_hour"] as? String, "2026-11-22T13:00Z")
        XCTAssertEqual(served["network"] as? String, "203.0.113.0/24")
        XCTAssertEqual(served["country"] as? String, "DE")
        XCTAssertEqual(served["basket_value"] as? Double, 59.9)

        await XCTAssertEqualAsync(try await event(pid, #"{"ip":"\#(raw[1])"}"#).status, 202)
        served = try await readFeatures(pid, purpose: "product_recs").features
        XCTAssertEqual(served["network"] as? String, "2001:db8:abcd::/48")

        // Nothing of the raw values reaches the logs or, in the clear, the data directory.
        node.stop()
        let logs = node.logLines.joined(separator: "\n")
        let files = try FileManager.default.contentsOfDirectory(atPath: federation.dataDirectory("eu-1"))
        let stored = try files.map { try Data(contentsOf: URL(fileURLWithPath: federation.dataDirectory("eu-1") + "/" + $0)) }
        for value in raw + ["boots", "13:45:12"] {
            XCTAssertFalse(logs.contains(value), "log lines contain \(value)")
            for data in stored { XCTAssertNil(data.range(of: Data(value.utf8)), "the data directory contains \(value)") }
        }
    }

    /// A malformed event is refused as such whatever pid it names: an event
    /// carrying PII for another region's subject gets 422, never a 421 that
    /// would send the client, and the PII, to that region.
    func test_events_malformedForAnotherRegion_areRefusedAsMalformed_notRedirected() async throws {
        try startNode()
        try await definePageView()
        let foreign = PID(keyVersion: 1, region: try RegionID("us"), digest: [UInt8](repeating: 9, count: PID.digestByteCount))
        assertProblem(try await event(foreign.rawValue, #"{"category":"call me on +49 151 2345 6789"}"#), 422, "pii_detected")
        assertProblem(try await event(foreign.rawValue, #"{"referrer":"https://x.example"}"#), 422, "unknown_field")
        let missing = try await node.call("POST", "/v1/events/nope", token: token("ingest"), json: #"{"pid":"\#(foreign)","fields":{}}"#)
        assertProblem(missing, 404, "unknown_contract")
        assertProblem(try await event(foreign.rawValue, #"{"category":"boots"}"#), 421, "misdirected")
    }

    func test_events_refuseUnknownFields_PII_andWrongTypes() async throws {
        try startNode()
        try await definePageView()
        let pid = try await register(email: "strict-events@example.com")
        try await receipt(pid, "grant", ["product_recs"])

        let unknown = try await event(pid, #"{"category":"boots","referrer":"https://x.example","utm_source":"mail"}"#)
        assertProblem(unknown, 422, "unknown_field")
        XCTAssertEqual(unknown.json["fields"] as? [String], ["referrer", "utm_source"])
        let pii = try await event(pid, #"{"category":"call me on +49 151 2345 6789"}"#)
        assertProblem(pii, 422, "pii_detected")
        XCTAssertTrue(pii.text.contains("fields.category"))
        XCTAssertFalse(pii.text.contains("2345"))
        assertProblem(try await event(pid, #"{"basket":"12"}"#), 422, "type_mismatch")
        assertProblem(try await event(pid, #"{"seen_at":"last tuesday"}"#), 422, "invalid_field")
        assertProblem(try await event(pid, #"{"ip":"300.1.1.1"}"#), 422, "invalid_field")
        await XCTAssertEqualAsync(try await readFeatures(pid, purpose: "product_recs").features.count, 0, "refused events store nothing")

        let missing = try await node.call("POST", "/v1/events/nope", token: token("ingest"), json: #"{"pid":"\#(pid)","fields":{}}"#)
        assertProblem(missing, 404, "unknown_contract")
        try await receipt(pid, "revoke", ["product_recs"])
        assertProblem(try await event(pid, #"{"category":"boots"}"#), 403, "consent_required")

        let badTransform = try await node.call("PUT", "/v1/contracts/bad", token: token("admin"),
                                               json: #"{"fields":{"x":{"type":"string","transform":"bucket_day","feature":"last_category"}}}"#)
        assertProblem(badTransform, 422, "invalid_contract")
        let undefined = try await node.call("PUT", "/v1/contracts/bad", token: token("admin"),
                                            json: #"{"fields":{"x":{"type":"string","feature":"no_such_feature"}}}"#)
        assertProblem(undefined, 422, "unknown_feature")
        let mistyped = try await node.call("PUT", "/v1/contracts/bad", token: token("admin"),
                                           json: #"{"fields":{"x":{"type":"number","feature":"last_category"}}}"#)
        assertProblem(mistyped, 422, "type_mismatch")
        let listed = try await node.call("GET", "/v1/contracts", token: token("serve"))
        XCTAssertEqual((listed.json["contracts"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["page_view"])
    }
}
