import DomicileClient
import DomicileModel
import Foundation

extension DemoCommand {
    /// Embeddings searched under consent, and a differentially private
    /// aggregate charged to the region's budget.
    static func embeddingsAndAggregates(_ federation: LocalFederation, anna: (node: String, pid: String)) async throws {
        let (node, pid) = anna
        step("Embeddings: stored sealed, searched only among subjects whose consent covers the purpose")
        let products = CollectionDefinition(dimension: 8, metric: .cosine, purpose: "product_recs", index: .hnsw(m: 16, efConstruction: 100))
        if let refused = try await refusal(of: { try await federation.node(node, as: "admin").defineCollection("products", products) }) {
            throw CLIError.failed("collection refused: \(refused.status)")
        }
        // Eight components, each to three decimals.
        func vector(_ seed: Int) -> [Double] {
            (0..<8).map { Double(String(format: "%.3f", sin(Double(seed) * 0.37 + Double($0))))! }
        }
        var stored = 0
        // Each shopper is registered, granted and given a vector through three different nodes.
        let region = String(node.prefix { $0 != "-" })
        let nodes = federation.nodes(of: region)
        func through(_ index: Int, _ step: Int) -> String { nodes[(index + step) % nodes.count] }
        for index in 0..<24 {
            let shopper = try await federation.node(through(index, 0), as: "ingest")
                .register(.customerID("shopper-\(index)"), home: .country("DE")).pid
            // Two in three shoppers consent to recommendations (and to analytics).
            if index % 3 != 0 {
                let grant = ConsentRequest.grant(["product_recs", "analytics"], source: "app:v7", collectedAt: Timestamp.now.rfc3339)
                _ = try await refusal(of: { _ = try await federation.node(through(index, 1), as: "ingest").appendConsent(grant, for: shopper) })
            }
            let refused = try await refusal(of: {
                try await federation.node(through(index, 2), as: "ingest").putVector(vector(index), for: shopper, in: "products")
            })
            if refused == nil { stored += 1 }
        }
        say("24 shoppers, each registered, granted and given a vector on three different nodes of \(region): \(stored) vectors stored, "
            + "\(24 - stored) refused (403 consent_required: no grant)")
        _ = try await refusal(of: { try await federation.node(node, as: "ingest").putVector(vector(5), for: pid, in: "products") })
        let likeAnna = SearchRequest(pid: pid, k: 3, purpose: "product_recs")
        let results = try await federation.node(node, as: "serve").search("products", likeAnna).results
        let similar = results.map { String(format: "%@… %.3f", String($0.pid.prefix(18)), $0.score) }
        say("shoppers most like Anna (by her own vector, cosine): \(similar.joined(separator: ", "))")
        if let nearest = results.first?.pid, let revokeOn = nodes.last, let searchOn = nodes.first {
            let revoke = ConsentRequest.revoke(["product_recs"], source: "app:v7", collectedAt: Timestamp.now.rfc3339)
            _ = try await refusal(of: { _ = try await federation.node(revokeOn, as: "ingest").appendConsent(revoke, for: nearest) })
            let still = try await federation.node(searchOn, as: "serve").search("products", likeAnna).pids.contains(nearest)
            say("the nearest shopper revokes product_recs on \(revokeOn); searched again on \(searchOn): "
                + (still ? "STILL RETURNED" : "out of the index before the revoke returned"))
        }
        let mismatch = try await refusal(of: {
            _ = try await federation.node(node, as: "serve").search("products", SearchRequest(pid: pid, k: 3, purpose: "marketing_email"))
        })
        say("searching the collection for another purpose: \(outcome(mismatch, success: 200))")

        step("Aggregates: differentially private, over consenting subjects only, charged to the budget before release")
        let analyst = try federation.node(node, as: "analyst")
        func count(epsilon: Double, dataset: String) -> AggregateRequest {
            AggregateRequest(name: "analytics_subjects", kind: .count, epsilon: epsilon, dataset: dataset)
        }
        let release = try await analyst.releaseAggregate(count(epsilon: 1, dataset: "crm"))
        let remaining = release.budgetRemaining?.epsilon ?? .nan
        say(String(format: "subjects with analytics consent, discrete Laplace ε=1: %.0f (noise scale %.2f); ε left this month: %.1f",
                   release.value ?? .nan, release.noiseScale, remaining))
        let greedy = try await refusal(of: { _ = try await analyst.releaseAggregate(count(epsilon: 100, dataset: "crm")) })
        say("a release beyond the budget: \(outcome(greedy, success: 201)) (nothing released)")
        let relabelled = try await refusal(of: { _ = try await analyst.releaseAggregate(count(epsilon: remaining, dataset: "web")) })
        let anotherLabel = try await refusal(of: { _ = try await analyst.releaseAggregate(count(epsilon: 0.5, dataset: "crm_copy")) })
        say("the region's remaining ε under the label web: \(relabelled?.status ?? 201); then ε 0.5 under a fresh label: "
            + "\(outcome(anotherLabel, success: 201)) (one budget per region, whatever the label)")

        step("The federation: us and br release the same count; only the releases cross borders, and every node of every region "
             + "sees the global view")
        for releasing in ["us-3", "br-3"] {
            let released = try await federation.node(releasing, as: "analyst").releaseAggregate(count(epsilon: 1, dataset: "crm"))
            say(String(format: "%@ released %.0f (ε=1)", releasing, released.value ?? .nan))
        }
        var latest: GlobalAggregate?
        let started = Date()
        let everywhere = await waitUntil(seconds: 30) {
            for reader in federation.nodeNames {
                guard let view = try? await federation.node(reader, as: "analyst").globalAggregate("analytics_subjects"),
                      view.missingRegions == [] else { return false }
                latest = view
            }
            return true
        }
        guard everywhere, let global = latest else { throw CLIError.failed("the global view did not reach every node in 30 s") }
        say(String(format: "on all nine nodes after %.1f s: sum %.0f, σ %.2f (√Σσᵢ²), 95%% interval [%.1f, %.1f], ε %.0f (%@)",
                   Date().timeIntervalSince(started), global.value ?? .nan, global.noiseScale, global.interval.low ?? .nan,
                   global.interval.high ?? .nan, global.epsilon, global.epsilonAssumption ?? "?"))
    }
}
