import DomicileTestSupport
import Foundation
import XCTest

/// The privacy budget is the region's, per period: every release and
/// external charge spends from it whatever `dataset` label it carries, and
/// an admin's label cap shares it out without adding to it (API.md,
/// Aggregates; DESIGN.md section 10). Black-box, through a node's HTTP API.
final class PrivacyBudgetTests: NodeTestCase {
    func startNode(epsilon: Double, caps: [String: Any] = [:]) async throws {
        try startNode(regions: ["eu"]) { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["privacy_epsilon_per_period"] = epsilon
            if !caps.isEmpty { limits["privacy_label_caps"] = caps }
            config["limits"] = limits
        }
        for index in 0..<2 {
            let pid = try await register(email: "budget-\(index)@example.com")
            let granted = try await receipt(pid, "grant", ["analytics"])
            XCTAssertLessThan(granted.status, 300, granted.text)
        }
    }

    func count(_ dataset: String, epsilon: Double) async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/aggregates", token: token("analyst"),
                            json: #"{"name":"subjects","kind":"count","epsilon":\#(epsilon),"dataset":"\#(dataset)"}"#)
    }

    /// A DP-SGD run's charge (ε ≈ 0.2 at δ 1e-6 through the RDP accountant).
    func charge(_ dataset: String) async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/privacy-budget/charges", token: token("analyst"), json: """
            {"dataset":"\(dataset)","mechanism":"subsampled_gaussian","sample_rate":0.01,"noise_multiplier":4,"steps":100,"delta":1e-6}
            """)
    }

    func budgetReport() async throws -> [String: Any] {
        let response = try await node.call("GET", "/v1/privacy-budget", token: token("privacy_officer"))
        XCTAssertEqual(response.status, 200, response.text)
        return response.json
    }

    func latestRelease() async throws -> String? {
        try await node.call("GET", "/v1/aggregates/subjects", token: token("analyst")).json["release_id"] as? String
    }

    /// The attack of issue 12: ten releases under each of five labels spent
    /// ε 50 of a budget of 10. Now the fifth label's release spends the
    /// region's last ε, and every label is refused after it.
    func test_fiveLabels_cannotMultiplyTheRegionsBudget() async throws {
        try await startNode(epsilon: 5)
        let labels = ["crm", "crm_2", "web", "app", "research"]
        for label in labels {
            let released = try await count(label, epsilon: 1)
            XCTAssertEqual(released.status, 201, released.text)
        }
        let last = try await latestRelease()
        for label in labels + ["brand_new"] {
            let refused = try await count(label, epsilon: 0.5)
            assertProblem(refused, 403, "budget_exhausted")
            XCTAssertEqual(refused.json["epsilon_remaining"] as? Double, 0, "label \(label)")
        }
        assertProblem(try await charge("brand_new"), 403, "budget_exhausted")
        let latest = try await latestRelease()
        XCTAssertEqual(latest, last, "a refused release was stored")

        let budget = try await budgetReport()
        XCTAssertEqual((budget["spent"] as? [String: Any])?["epsilon"] as? Double ?? 0, 5, accuracy: 1e-9)
        XCTAssertEqual((budget["remaining"] as? [String: Any])?["epsilon"] as? Double, 0)
        let datasets = try XCTUnwrap(budget["datasets"] as? [[String: Any]])
        XCTAssertEqual(datasets.compactMap { $0["dataset"] as? String }, labels.sorted(), "labels report the spend, refused ones spent nothing")
        for entry in datasets {
            XCTAssertEqual(entry["epsilon_spent"] as? Double ?? 0, 1, accuracy: 1e-9)
            XCTAssertEqual(entry["epsilon_remaining"] as? Double, 0, "no label has budget of its own")
        }
    }

    /// A cap refuses its label once spent while the others still release;
    /// a cap as large as the region's limit adds nothing; external charges
    /// draw from the same region budget.
    func test_labelCaps_shareOutTheRegionsBudget_andExternalChargesSpendIt() async throws {
        try await startNode(epsilon: 4, caps: ["trial": ["epsilon": 1], "wide": ["epsilon": 4]])
        let trial = try await count("trial", epsilon: 0.6)
        XCTAssertEqual(trial.status, 201, trial.text)
        XCTAssertEqual((trial.json["budget_remaining"] as? [String: Any])?["epsilon"] as? Double ?? 0, 0.4, accuracy: 1e-9,
                       "what the label may still spend: its cap's remainder")
        assertProblem(try await count("trial", epsilon: 0.6), 403, "budget_exhausted")
        let crm = try await count("crm", epsilon: 1)
        XCTAssertEqual(crm.status, 201, crm.text)
        XCTAssertEqual((crm.json["budget_remaining"] as? [String: Any])?["epsilon"] as? Double ?? 0, 2.4, accuracy: 1e-9)

        // An external charge under yet another label spends the region's budget.
        let charged = try await charge("recs_model")
        XCTAssertEqual(charged.status, 201, charged.text)
        let chargedEpsilon = try XCTUnwrap(charged.json["epsilon"] as? Double)
        XCTAssertGreaterThan(chargedEpsilon, 0)
        let left = 2.4 - chargedEpsilon
        XCTAssertGreaterThan(left, 1)

        // "wide" is capped at the region's whole limit, yet only the region's remainder is left to it.
        assertProblem(try await count("wide", epsilon: left + 0.01), 403, "budget_exhausted")
        let wide = try await count("wide", epsilon: left - 0.01)
        XCTAssertEqual(wide.status, 201, wide.text)
        assertProblem(try await count("crm", epsilon: 0.02), 403, "budget_exhausted")
        assertProblem(try await charge("recs_model"), 403, "budget_exhausted")

        let budget = try await budgetReport()
        XCTAssertEqual((budget["limits"] as? [String: Any])?["epsilon"] as? Double, 4)
        XCTAssertEqual((budget["spent"] as? [String: Any])?["epsilon"] as? Double ?? 0, 3.99, accuracy: 1e-9)
        let datasets = try XCTUnwrap(budget["datasets"] as? [[String: Any]])
        XCTAssertEqual(datasets.compactMap { $0["dataset"] as? String }, ["crm", "recs_model", "trial", "wide"])
        let byLabel = Dictionary(uniqueKeysWithValues: datasets.map { ($0["dataset"] as? String ?? "", $0) })
        XCTAssertEqual((byLabel["trial"]?["cap"] as? [String: Any])?["epsilon"] as? Double, 1)
        XCTAssertEqual(byLabel["trial"]?["epsilon_spent"] as? Double ?? 0, 0.6, accuracy: 1e-9)
        XCTAssertEqual(byLabel["recs_model"]?["epsilon_spent"] as? Double ?? 0, chargedEpsilon, accuracy: 1e-9)
        XCTAssertNil(byLabel["crm"]?["cap"], "an uncapped label reports no cap")
        XCTAssertEqual(byLabel["wide"]?["epsilon_remaining"] as? Double ?? 1, 0.01, accuracy: 1e-9, "the region's remainder, not its cap's")
    }
}
