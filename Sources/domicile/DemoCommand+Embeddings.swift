import DomicileModel
import Foundation

extension DemoCommand {
    /// Embeddings searched under consent, and a differentially private
    /// aggregate charged to the region's budget.
    static func embeddingsAndAggregates(_ federation: LocalFederation, anna: (node: String, pid: String)) async throws {
        let (node, pid) = anna
        step("Embeddings: stored sealed, searched only among subjects whose consent covers the purpose")
        let collection = try await federation.call(node, "PUT", "/v1/collections/products", role: "admin",
                                                   json: #"{"dimension":8,"metric":"cosine","purpose":"product_recs","index":{"kind":"hnsw","m":16,"ef_construction":100}}"#)
        guard [200, 201].contains(collection.status) else { throw CLIError.failed("collection refused: \(collection.status)") }
        func vector(_ seed: Int) -> String {
            "[" + (0..<8).map { String(format: "%.3f", sin(Double(seed) * 0.37 + Double($0))) }.joined(separator: ",") + "]"
        }
        var stored = 0
        // Each shopper is registered, granted and given a vector through three different nodes.
        let region = String(node.prefix { $0 != "-" })
        let nodes = federation.nodes(of: region)
        func through(_ index: Int, _ step: Int) -> String { nodes[(index + step) % nodes.count] }
        for index in 0..<24 {
            let registered = try await federation.call(through(index, 0), "POST", "/v1/subjects", role: "ingest",
                                                       json: #"{"identifier":{"kind":"customer_id","value":"shopper-\#(index)"},"country":"DE"}"#)
            guard let shopper = registered.json["pid"] as? String else { throw CLIError.failed("registration failed: \(registered.status)") }
            // Two in three shoppers consent to recommendations (and to analytics).
            if index % 3 != 0 {
                _ = try await federation.call(through(index, 1), "POST", "/v1/subjects/\(shopper)/consents", role: "ingest",
                                              json: #"{"action":"grant","purposes":["product_recs","analytics"],"source":"app:v7","collected_at":"\#(Timestamp.now.rfc3339)"}"#)
            }
            let put = try await federation.call(through(index, 2), "PUT", "/v1/collections/products/vectors/\(shopper)", role: "ingest",
                                                json: #"{"vector":\#(vector(index))}"#)
            if put.status == 200 { stored += 1 }
        }
        say("24 shoppers, each registered, granted and given a vector on three different nodes of \(region): \(stored) vectors stored, "
            + "\(24 - stored) refused (403 consent_required: no grant)")
        _ = try await federation.call(node, "PUT", "/v1/collections/products/vectors/\(pid)", role: "ingest", json: #"{"vector":\#(vector(5))}"#)
        let search = try await federation.call(node, "POST", "/v1/collections/products/search", role: "serve",
                                               json: #"{"pid":"\#(pid)","k":3,"purpose":"product_recs"}"#)
        let results = search.json["results"] as? [[String: Any]] ?? []
        let similar = results.map { String(format: "%@… %.3f", String(($0["pid"] as? String ?? "").prefix(18)), $0["score"] as? Double ?? 0) }
        say("shoppers most like Anna (by her own vector, cosine): \(similar.joined(separator: ", "))")
        if let nearest = results.first?["pid"] as? String, let revokeOn = nodes.last, let searchOn = nodes.first {
            _ = try await federation.call(revokeOn, "POST", "/v1/subjects/\(nearest)/consents", role: "ingest",
                                          json: #"{"action":"revoke","purposes":["product_recs"],"source":"app:v7","collected_at":"\#(Timestamp.now.rfc3339)"}"#)
            let again = try await federation.call(searchOn, "POST", "/v1/collections/products/search", role: "serve",
                                                  json: #"{"pid":"\#(pid)","k":3,"purpose":"product_recs"}"#)
            let still = (again.json["results"] as? [[String: Any]] ?? []).contains { $0["pid"] as? String == nearest }
            say("the nearest shopper revokes product_recs on \(revokeOn); searched again on \(searchOn): "
                + (still ? "STILL RETURNED" : "out of the index before the revoke returned"))
        }
        let mismatch = try await federation.call(node, "POST", "/v1/collections/products/search", role: "serve",
                                                 json: #"{"pid":"\#(pid)","k":3,"purpose":"marketing_email"}"#)
        say("searching the collection for another purpose: \(mismatch.status) \(mismatch.json["code"] ?? "")")

        step("Aggregates: differentially private, over consenting subjects only, charged to the budget before release")
        let release = try await federation.call(node, "POST", "/v1/aggregates", role: "analyst",
                                                json: #"{"name":"analytics_subjects","kind":"count","epsilon":1.0,"dataset":"crm"}"#)
        let remaining = (release.json["budget_remaining"] as? [String: Any])?["epsilon"] as? Double ?? .nan
        say(String(format: "subjects with analytics consent, discrete Laplace ε=1: %.0f (noise scale %.2f); ε left this month: %.1f",
                   release.json["value"] as? Double ?? .nan, release.json["noise_scale"] as? Double ?? .nan, remaining))
        let greedy = try await federation.call(node, "POST", "/v1/aggregates", role: "analyst",
                                               json: #"{"name":"analytics_subjects","kind":"count","epsilon":100,"dataset":"crm"}"#)
        say("a release beyond the budget: \(greedy.status) \(greedy.json["code"] ?? "") (nothing released)")
        let relabelled = try await federation.call(node, "POST", "/v1/aggregates", role: "analyst",
                                                   json: #"{"name":"analytics_subjects","kind":"count","epsilon":\#(remaining),"dataset":"web"}"#)
        let anotherLabel = try await federation.call(node, "POST", "/v1/aggregates", role: "analyst",
                                                     json: #"{"name":"analytics_subjects","kind":"count","epsilon":0.5,"dataset":"crm_copy"}"#)
        say("the region's remaining ε under the label web: \(relabelled.status); then ε 0.5 under a fresh label: "
            + "\(anotherLabel.status) \(anotherLabel.json["code"] ?? "") (one budget per region, whatever the label)")

        step("The federation: us and br release the same count; only the releases cross borders, and every node of every region "
             + "sees the global view")
        for releasing in ["us-3", "br-3"] {
            let released = try await federation.call(releasing, "POST", "/v1/aggregates", role: "analyst",
                                                     json: #"{"name":"analytics_subjects","kind":"count","epsilon":1.0,"dataset":"crm"}"#)
            say(String(format: "%@ released %.0f (ε=1)", releasing, released.json["value"] as? Double ?? .nan))
        }
        var global: [String: Any] = [:]
        let started = Date()
        let everywhere = await waitUntil(seconds: 30) {
            for reader in federation.nodeNames {
                guard let view = try? await federation.call(reader, "GET", "/v1/aggregates/analytics_subjects/global", role: "analyst"),
                      (view.json["missing_regions"] as? [String]) == [] else { return false }
                global = view.json
            }
            return true
        }
        guard everywhere else { throw CLIError.failed("the global view did not reach every node in 30 s") }
        let interval = global["interval"] as? [String: Any] ?? [:]
        say(String(format: "on all nine nodes after %.1f s: sum %.0f, σ %.2f (√Σσᵢ²), 95%% interval [%.1f, %.1f], ε %.0f (%@)",
                   Date().timeIntervalSince(started), global["value"] as? Double ?? .nan, global["noise_scale"] as? Double ?? .nan,
                   interval["low"] as? Double ?? .nan, interval["high"] as? Double ?? .nan, global["epsilon"] as? Double ?? .nan,
                   global["epsilon_assumption"] as? String ?? "?"))
    }
}
