import DomicileTestSupport
import Foundation
import XCTest

/// Federated search on real processes, three regions of three nodes: each
/// region exports noised copies of its subjects' vectors; a federated
/// search on any node finds subjects of all three regions, each hit saying
/// where it comes from and whether its score is exact or noised; a revoke in
/// us takes the subject out of fresh results at once and out of replica
/// results within the stated bound, and an erasure takes it out of every
/// region's; a paused node is covered by the hedge to another; a stopped
/// region makes the answer
/// partial within the deadline; and no other region's files hold a
/// subject's full-precision vector.
final class FederatedSearchTests: FederationTestCase {
    static let regions = ["eu": "DE", "us": "US", "br": "BR"]
    static let dimension = 8

    /// Subject `index` of `region`: a vector of its own, distinct from every other.
    static func vector(_ region: String, _ index: Int) -> [Double] {
        let offset: Int = ["eu": 0, "us": 1, "br": 2][region]! * 3 + index
        return (0..<dimension).map { (component: Int) -> Double in
            let phase: Double = (Double(offset * 7 + component * 3) * 0.6180339).truncatingRemainder(dividingBy: 1)
            return (phase * 1_000).rounded() / 1_000 + 0.05
        }
    }

    static func json(_ vector: [Double]) -> String { "[" + vector.map { "\($0)" }.joined(separator: ",") + "]" }

    private func search(_ node: String, _ body: String) async throws -> (json: [String: Any], milliseconds: Double) {
        let started = Date()
        let response = try await call(node, "POST", "/v1/collections/taste/search", role: "serve", json: body)
        XCTAssertEqual(response.status, 200, response.text)
        return (response.json, Date().timeIntervalSince(started) * 1_000)
    }

    private func results(_ json: [String: Any]) -> [[String: Any]] { json["results"] as? [[String: Any]] ?? [] }

    private func report(_ json: [String: Any], _ region: String) -> [String: Any] {
        (json["regions"] as? [String: [String: Any]])?[region] ?? [:]
    }

    func test_federatedSearch_findsEveryRegion_freshAndReplicas_followsRevokes_andIsPartialWithoutARegion() async throws {
        federation = try FederationFixture(regions: ["eu", "us", "br"], nodesPerRegion: 3, gossip: true, regionLog: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        try await waitUntilFederated()

        // Three subjects per region, each step on another node of its region.
        var pids: [String: [String]] = [:]
        for (region, country) in Self.regions.sorted(by: { $0.key < $1.key }) {
            let defined = try await call("\(region)-1", "PUT", "/v1/collections/taste", role: "admin", json: """
                {"dimension":\(Self.dimension),"metric":"cosine","purpose":"product_recs","index":{"kind":"flat"},
                 "export":{"epsilon":4,"delta":1e-6,"clip_norm":1}}
                """)
            XCTAssertEqual(defined.status, 201, defined.text)
            for index in 0..<3 {
                let registered = try await call("\(region)-1", "POST", "/v1/subjects", role: "ingest",
                                                json: #"{"identifier":{"kind":"email","value":"search-\#(region)-\#(index)@example.com"},"country":"\#(country)"}"#)
                XCTAssertEqual(registered.status, 201, registered.text)
                let pid = try XCTUnwrap(registered.json["pid"] as? String)
                let granted = try await call("\(region)-2", "POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                                             json: #"{"action":"grant","purposes":["product_recs"],"source":"test:e2e","collected_at":"2026-01-01T00:00:00Z"}"#)
                XCTAssertEqual(granted.status, 201, granted.text)
                let stored = try await call("\(region)-3", "PUT", "/v1/collections/taste/vectors/\(pid)", role: "ingest",
                                            json: #"{"vector":\#(Self.json(Self.vector(region, index)))}"#)
                XCTAssertEqual(stored.status, 200, stored.text)
                pids[region, default: []].append(pid)
            }
        }
        let everyone = Set(pids.values.joined())
        let query = #"{"vector":\#(Self.json(Self.vector("eu", 0))),"k":20,"purpose":"product_recs","scope":"federated""#

        // Replicas: every node of every region ends up holding the other regions' noised copies.
        for name in ["eu-2", "us-3", "br-1"] {
            var last: [String: Any] = [:]
            let complete = try await eventually(seconds: 30) {
                last = try await search(name, query + "}").json
                return Set(results(last).compactMap { $0["pid"] as? String }) == everyone
            }
            XCTAssertTrue(complete, "\(name) finds the subjects of every region: \(last)")
            let home = String(name.prefix(2))
            for hit in results(last) {
                let region = try XCTUnwrap(hit["region"] as? String)
                XCTAssertTrue(pids[region]?.contains(hit["pid"] as? String ?? "") == true, "\(hit) is of the region it names")
                XCTAssertEqual(hit["source"] as? String, region == home ? "local" : "replica", "\(hit)")
                XCTAssertEqual(hit["score_kind"] as? String, region == home ? "exact" : "noised", "\(hit)")
            }
            XCTAssertEqual(last["partial"] as? Bool, false)
            XCTAssertEqual(report(last, home)["status"] as? String, "local")
            for other in Self.regions.keys where other != home {
                XCTAssertEqual(report(last, other)["status"] as? String, "replica", "\(last)")
                XCTAssertEqual(report(last, other)["hits"] as? Int, 3)
                XCTAssertNotNil(report(last, other)["as_of"] as? String)
            }
        }

        // Fresh: one request per region, answered from what it exported.
        let fresh = try await search("eu-3", query + #","fresh":true}"#).json
        XCTAssertEqual(Set(results(fresh).compactMap { $0["pid"] as? String }), everyone, "\(fresh)")
        XCTAssertTrue(results(fresh).allSatisfy { hit in
            hit["region"] as? String == "eu" ? hit["source"] as? String == "local" : hit["source"] as? String == "remote"
                && hit["score_kind"] as? String == "noised"
        }, "\(fresh)")
        XCTAssertEqual(report(fresh, "us")["status"] as? String, "remote", "\(fresh)")
        XCTAssertEqual(report(fresh, "br")["status"] as? String, "remote", "\(fresh)")

        // A query by pid travels as the subject's noised copy; it is not among its own results.
        let byExample = try await search("eu-1", #"{"pid":"\#(pids["eu"]![1])","k":20,"purpose":"product_recs","scope":"federated","fresh":true}"#).json
        XCTAssertEqual(Set(results(byExample).compactMap { $0["pid"] as? String }), everyone.subtracting([pids["eu"]![1]]), "\(byExample)")

        // A revoke in us: gone from fresh results at once (asked of us's nodes, filtered by consent now) ...
        let revoked = pids["us"]![0]
        let revoke = try await call("us-2", "POST", "/v1/subjects/\(revoked)/consents", role: "ingest",
                                    json: #"{"action":"revoke","purposes":["product_recs"],"source":"test:e2e","collected_at":"2026-01-02T00:00:00Z"}"#)
        XCTAssertEqual(revoke.status, 201, revoke.text)
        let revokedAt = Date()
        for name in ["eu-1", "br-2"] {
            let after = try await search(name, query + #","fresh":true}"#).json
            XCTAssertFalse(results(after).contains { $0["pid"] as? String == revoked }, "\(name) still finds the revoked subject fresh: \(after)")
            XCTAssertEqual(results(after).count, everyone.count - 1, "\(after)")
        }
        // ... and from every region's replicas within the bound (docs/FEDERATION.md: a few exchange rounds).
        for name in ["eu-2", "br-3"] {
            let gone = try await eventually(seconds: 15) {
                !results(try await search(name, query + "}").json).contains { $0["pid"] as? String == revoked }
            }
            XCTAssertTrue(gone, "\(name)'s replica of the revoked subject is retracted")
        }
        print("replica retraction after a revoke, seen on eu-2 and br-3: \(Int(Date().timeIntervalSince(revokedAt) * 1_000)) ms")

        // A follower of us paused: every fresh search still hears from us, through the hedge to a second node.
        var leader = ""
        for name in ["us-1", "us-2", "us-3"] {
            let log = try await call(name, "GET", "/v1/cluster", role: "admin").json["region_log"] as? [String: Any]
            if log?["role"] as? String == "leader" { leader = name }
        }
        let paused = try XCTUnwrap(["us-1", "us-2", "us-3"].first { $0 != leader && !leader.isEmpty }, "us has a leader")
        nodes[paused]!.pause()
        for _ in 0..<20 {
            // A deadline generous enough that the hedge (at 40% of it) always has time on a busy machine.
            let answer = try await search("eu-2", query + #","fresh":true,"deadline_ms":3000}"#).json
            XCTAssertEqual(report(answer, "us")["status"] as? String, "remote", "with \(paused) paused: \(answer)")
        }
        nodes[paused]!.resume()

        // An erasure asked of a node of us for an eu subject: once complete, no region finds its copy, fresh or replica.
        let erased = pids["eu"]![2]
        let requested = try await call("us-1", "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(erased)"}"#)
        XCTAssertEqual(requested.status, 202, requested.text)
        let erasureID = try XCTUnwrap(requested.json["erasure_id"] as? String)
        let completed = try await eventually(seconds: 30) {
            try await call("us-1", "GET", "/v1/erasures/\(erasureID)", role: "privacy_officer").json["status"] as? String == "complete"
        }
        XCTAssertTrue(completed, "the erasure completes in every region")
        // And the federation settles: nothing is published again and again (the erased subject's retraction once).
        func held() async throws -> [String: Int] {
            var held: [String: Int] = [:]
            for name in ["eu-1", "us-1", "br-1"] {
                let view = try await call(name, "GET", "/v1/cluster", role: "admin").json["federation"] as? [String: Any]
                for (origin, seq) in view?["held"] as? [String: Int] ?? [:] { held["\(name)<\(origin)"] = seq }
            }
            return held
        }
        var before = try await held()
        let settled = try await eventually(seconds: 20) {
            try await Task.sleep(nanoseconds: 1_500_000_000)
            let after = try await held()
            defer { before = after }
            return after == before
        }
        XCTAssertTrue(settled, "the regions' entries keep growing after the erasure: \(before)")
        for name in ["us-2", "br-1"] {
            for body in [query + "}", query + #","fresh":true}"#] {
                let after = try await search(name, body).json
                XCTAssertFalse(results(after).contains { $0["pid"] as? String == erased }, "\(name) still finds the erased subject: \(after)")
            }
        }

        // br stops: a fresh search is partial, br unreachable, and answered within the deadline.
        for index in 1...3 { nodes["br-\(index)"]!.kill() }
        let partial = try await search("us-1", query + #","fresh":true,"deadline_ms":400}"#)
        XCTAssertEqual(partial.json["partial"] as? Bool, true, "\(partial.json)")
        XCTAssertEqual(report(partial.json, "br")["status"] as? String, "unreachable", "\(partial.json)")
        XCTAssertNotNil(report(partial.json, "br")["reason"] as? String)
        XCTAssertEqual(report(partial.json, "eu")["status"] as? String, "remote", "\(partial.json)")
        XCTAssertFalse(results(partial.json).contains { $0["region"] as? String == "br" })
        XCTAssertLessThan(partial.milliseconds, 400 + 1_500, "the deadline bounds the wait for a stopped region")

        // No other region's files hold any subject's full-precision vector: only sealed noised copies.
        for node in nodes.values { node.kill() }
        for (home, homePIDs) in pids {
            let canaries = federation.directory.file("canaries-\(home).json")
            let vectors = (0..<homePIDs.count).map { #"{"values":\#(Self.json(Self.vector(home, $0)))}"# }.joined(separator: ",")
            try Data(#"{"identifiers":[],"features":[],"vectors":[\#(vectors)]}"#.utf8).write(to: URL(fileURLWithPath: canaries))
            for other in Self.regions.keys where other != home {
                for index in 1...3 {
                    let scan = try Binary.run(["scan", federation.dataDirectory("\(other)-\(index)"), "--canaries", canaries])
                    XCTAssertEqual(scan.status, 0, "\(other)-\(index) holds a vector of \(home): \(scan.stdout) \(scan.stderr)")
                }
            }
        }
    }
}
