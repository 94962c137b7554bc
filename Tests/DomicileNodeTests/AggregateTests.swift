import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

final class AggregateTests: NodeTestCase {
    func aggregate(_ body: String) async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/aggregates", token: token("analyst"), json: body)
    }

    /// Subjects with and without analytics consent, each with a spend feature.
    func populate(consenting: Int, others: Int) async throws {
        try await defineFeature("spend", type: "number", purpose: "analytics")
        try await defineFeature("segment", type: "string", purpose: "analytics")
        for index in 0..<(consenting + others) {
            let pid = try await register(email: "aggregate-\(index)@example.com")
            // Only consenting subjects can hold analytics features at all; the others get a grant, a value, then a revoke.
            try await receipt(pid, "grant", ["analytics"])
            await XCTAssertEqualAsync(try await writeFeatures(pid, #"{"spend":\#(10 + index % 5),"segment":"\#(index % 2 == 0 ? "gold" : "silver")"}"#).status, 200)
            if index >= consenting { try await receipt(pid, "revoke", ["analytics"]) }
        }
    }

    func test_aggregates_countOnlyConsentingSubjects_andReleaseWithTheirNoise() async throws {
        try startNode(regions: ["eu", "us"]) { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["privacy_epsilon_per_period"] = 1_000.0
            config["limits"] = limits
        }
        try await populate(consenting: 12, others: 5)
        // ε = 60: the discrete Laplace is 0 with probability 1 − 2e⁻⁶⁰/(1+e⁻⁶⁰), so the count is exact.
        let count = try await aggregate(#"{"name":"subjects","kind":"count","epsilon":60}"#)
        XCTAssertEqual(count.status, 201, count.text)
        XCTAssertEqual(count.json["value"] as? Double, 12)
        XCTAssertEqual(count.json["mechanism"] as? String, "laplace")
        XCTAssertEqual(count.json["region"] as? String, "eu")
        XCTAssertNotNil(count.json["release_id"] as? String)
        XCTAssertEqual((count.json["noise_scale"] as? Double) ?? 0, 1 / 60, accuracy: 1e-5)

        let sum = try await aggregate(#"{"name":"spend_sum","kind":"sum","feature":"spend","clamp":[0,100],"epsilon":99}"#)
        XCTAssertEqual(sum.status, 201, sum.text)
        // 12 consenting subjects, spend 10 + i % 5 for i in 0..<12.
        let expected = (0..<12).map { Double(10 + $0 % 5) }.reduce(0, +)
        // Laplace scale ≈ 1.01 (ε 99, clamp 100, rounding charged): 15 scales either side fail with probability e⁻¹⁵.
        XCTAssertEqual(sum.json["value"] as? Double ?? 0, expected, accuracy: 15.2, "noise scale ~1.01 at ε 99 with clamp 100")

        let histogram = try await aggregate(#"{"name":"segments","kind":"histogram","feature":"segment","categories":["gold","silver","bronze"],"epsilon":60}"#)
        XCTAssertEqual(histogram.status, 201, histogram.text)
        XCTAssertEqual(histogram.json["values"] as? [String: Double], ["gold": 6, "silver": 6, "bronze": 0])

        let gaussian = try await aggregate(#"{"name":"spend_mean","kind":"mean","feature":"spend","clamp":[0,100],"mechanism":"gaussian","epsilon":2,"delta":1e-6}"#)
        XCTAssertEqual(gaussian.status, 201, gaussian.text)
        XCTAssertEqual(gaussian.json["delta"] as? Double, 1e-6)
        // A small ε over a wide clamp still fits the samplers' range (the grid is chosen for it).
        let wide = try await aggregate(#"{"name":"spend_wide","kind":"mean","feature":"spend","clamp":[0,1000],"mechanism":"gaussian","epsilon":0.05,"delta":1e-8}"#)
        XCTAssertEqual(wide.status, 201, wide.text)

        // The latest release, and the global view of this region alone.
        let latest = try await node.call("GET", "/v1/aggregates/subjects", token: token("analyst"))
        XCTAssertEqual(latest.json["release_id"] as? String, count.json["release_id"] as? String)
        let global = try await node.call("GET", "/v1/aggregates/subjects/global", token: token("analyst"))
        XCTAssertEqual(global.status, 200, global.text)
        XCTAssertEqual(global.json["missing_regions"] as? [String], ["br", "us"], "every other region of the policy")
        XCTAssertEqual(global.json["value"] as? Double, 12)
        assertProblem(try await node.call("GET", "/v1/aggregates/nothing", token: token("analyst")), 404, "unknown_aggregate")

        // Refusals.
        assertProblem(try await aggregate(#"{"name":"x","kind":"sum","feature":"spend","epsilon":1}"#), 422, "invalid_request")
        assertProblem(try await aggregate(#"{"name":"x","kind":"count","epsilon":0}"#), 422, "invalid_request")
        assertProblem(try await aggregate(#"{"name":"x","kind":"count","epsilon":1,"mechanism":"gaussian"}"#), 422, "invalid_request")
        assertProblem(try await aggregate(#"{"name":"x","kind":"sum","feature":"segment","clamp":[0,1],"epsilon":1}"#), 422, "type_mismatch")
        assertProblem(try await node.call("POST", "/v1/aggregates", token: token("serve"), json: "{}"), 403, "forbidden")
    }

    func test_budget_refusesReleasesBeyondIt_andExternalChargesUseIt() async throws {
        try startNode(regions: ["eu"]) { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["privacy_epsilon_per_period"] = 3.0
            config["limits"] = limits
        }
        try await populate(consenting: 2, others: 0)
        let first = try await aggregate(#"{"name":"subjects","kind":"count","epsilon":1.5}"#)
        XCTAssertEqual(first.status, 201, first.text)
        XCTAssertEqual((first.json["budget_remaining"] as? [String: Any])?["epsilon"] as? Double ?? 0, 1.5, accuracy: 1e-9)
        let refused = try await aggregate(#"{"name":"subjects","kind":"count","epsilon":2}"#)
        assertProblem(refused, 403, "budget_exhausted")
        let latest = try await node.call("GET", "/v1/aggregates/subjects", token: token("analyst"))
        XCTAssertEqual(latest.json["release_id"] as? String, first.json["release_id"] as? String, "the refused release was stored")

        // A DP-SGD run charged through the RDP accountant.
        let charge = try await node.call("POST", "/v1/privacy-budget/charges", token: token("analyst"), json: """
            {"dataset":"crm","mechanism":"subsampled_gaussian","sample_rate":0.01,"noise_multiplier":4,"steps":100,"delta":1e-6,"description":"recs model"}
            """)
        XCTAssertEqual(charge.status, 201, charge.text)
        XCTAssertEqual(charge.json["accountant"] as? String, "rdp")
        let charged = try XCTUnwrap(charge.json["epsilon"] as? Double)
        XCTAssertGreaterThan(charged, 0)
        XCTAssertLessThan(charged, 1.5)
        let tooLong = try await node.call("POST", "/v1/privacy-budget/charges", token: token("analyst"), json: """
            {"dataset":"crm","mechanism":"subsampled_gaussian","sample_rate":0.1,"noise_multiplier":0.8,"steps":10000,"delta":1e-6}
            """)
        assertProblem(tooLong, 403, "budget_exhausted")

        let budget = try await node.call("GET", "/v1/privacy-budget", token: token("privacy_officer"))
        XCTAssertEqual(budget.status, 200, budget.text)
        let crm = try XCTUnwrap((budget.json["datasets"] as? [[String: Any]])?.first { $0["dataset"] as? String == "crm" })
        XCTAssertEqual(crm["epsilon_spent"] as? Double ?? 0, 1.5 + charged, accuracy: 1e-9)
    }

    /// Kill -9 while releases are acknowledged: every acknowledged release
    /// is charged in the ledger after restart.
    func test_ledger_survivesSigkill_withoutLosingACharge() async throws {
        try startNode(regions: ["eu"]) { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["privacy_epsilon_per_period"] = 1_000_000.0
            config["limits"] = limits
        }
        try await populate(consenting: 2, others: 0)
        let node = self.node!
        let analyst = token("analyst")
        let acknowledged = Locked<[String]>([])
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        while !Task.isCancelled {
                            guard let response = try? await node.call("POST", "/v1/aggregates", token: analyst,
                                                                       json: #"{"name":"subjects","kind":"count","epsilon":0.5}"#),
                                  response.status == 201, let id = response.json["release_id"] as? String else { return }
                            acknowledged.withLock { $0.append(id) }
                        }
                    }
                }
            }
        }
        try await Task.sleep(nanoseconds: 1_200_000_000)
        node.kill()
        load.cancel()
        await load.value
        let released = acknowledged.value
        XCTAssertGreaterThan(released.count, 5, "the load ran long enough to matter")
        self.node = try federation.start("eu-1")
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        let charged = Set(try database.fetchAll("SELECT release_id FROM privacy_charges WHERE release_id IS NOT NULL", []) { $0.text(0) })
        let stored = Set(try database.fetchAll("SELECT release_id FROM aggregate_releases", []) { $0.text(0) })
        for id in released {
            XCTAssertTrue(charged.contains(id), "acknowledged release \(id) has no charge")
            XCTAssertTrue(stored.contains(id), "acknowledged release \(id) was lost")
        }
        XCTAssertEqual(charged, stored, "a release without its charge, or a charge without its release")
        let budget = try await self.node.call("GET", "/v1/privacy-budget", token: token("analyst"))
        let crm = (budget.json["datasets"] as? [[String: Any]])?.first { $0["dataset"] as? String == "crm" }
        XCTAssertEqual(crm?["epsilon_spent"] as? Double ?? 0, 0.5 * Double(charged.count), accuracy: 1e-6)
    }
}
