import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

final class VectorTests: NodeTestCase {
    /// A deterministic vector per index: neighbours in index are neighbours in space.
    static func vector(_ index: Int, dimension: Int = 8) -> [Double] {
        (0..<dimension).map { component in sin(Double(index) * 0.01 + Double(component)) + Double(component % 3) * 0.1 }
    }

    static func json(_ vector: [Double]) -> String { "[" + vector.map { String($0) }.joined(separator: ",") + "]" }

    func defineCollection(_ name: String = "recs", dimension: Int = 8, purpose: String = "product_recs",
                          index: String = #"{"kind":"hnsw","m":8,"ef_construction":64}"#) async throws -> NodeProcess.Response {
        try await node.call("PUT", "/v1/collections/\(name)", token: token("admin"), json: """
            {"dimension":\(dimension),"metric":"cosine","purpose":"\(purpose)","index":\(index),"export":{"epsilon":4.0,"delta":1e-6,"clip_norm":1.0}}
            """)
    }

    @discardableResult
    func putVector(_ pid: String, _ vector: [Double], collection: String = "recs") async throws -> NodeProcess.Response {
        try await node.call("PUT", "/v1/collections/\(collection)/vectors/\(pid)", token: token("ingest"), json: #"{"vector":\#(Self.json(vector))}"#)
    }

    func search(_ body: String, collection: String = "recs") async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/collections/\(collection)/search", token: token("serve"), json: body)
    }

    func searchPIDs(near vector: [Double], k: Int = 10) async throws -> [String] {
        let response = try await search(#"{"vector":\#(Self.json(vector)),"k":\#(k),"purpose":"product_recs"}"#)
        XCTAssertEqual(response.status, 200, response.text)
        return (response.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
    }

    func storedVectorCount(_ pid: String) throws -> Int {
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        return try database.fetchOne("SELECT count(*) FROM vectors WHERE pid = ?", [pid]) { Int($0.int64(0)) } ?? -1
    }

    func test_collections_validateTheirDefinition_andRoles() async throws {
        try startNode()
        let created = try await defineCollection()
        XCTAssertEqual(created.status, 201, created.text)
        XCTAssertEqual(created.json["dimension"] as? Int, 8)
        XCTAssertEqual((created.json["index"] as? [String: Any])?["m"] as? Int, 8)
        XCTAssertEqual((created.json["export"] as? [String: Any])?["epsilon"] as? Double, 4.0)
        await XCTAssertEqualAsync(try await defineCollection().status, 200)

        assertProblem(try await defineCollection("bad", dimension: 0), 422, "invalid_request")
        assertProblem(try await defineCollection("bad", purpose: "astrology"), 422, "unknown_purpose")
        assertProblem(try await defineCollection("bad", index: #"{"kind":"hnsw","m":1}"#), 422, "invalid_request")
        assertProblem(try await defineCollection("bad", index: #"{"kind":"ivf"}"#), 422, "invalid_request")
        // An empty export takes the defaults chosen from the utility curve; a bad field is refused by name.
        let defaulted = try await node.call("PUT", "/v1/collections/shared", token: token("admin"),
                                            json: #"{"dimension":8,"metric":"cosine","purpose":"product_recs","export":{}}"#)
        XCTAssertEqual(defaulted.status, 201, defaulted.text)
        let export = try XCTUnwrap(defaulted.json["export"] as? [String: Any])
        XCTAssertEqual([export["epsilon"] as? Double, export["delta"] as? Double, export["clip_norm"] as? Double], [1, 1e-6, 1])
        assertProblem(try await node.call("PUT", "/v1/collections/bad", token: token("admin"),
                                          json: #"{"dimension":8,"metric":"cosine","purpose":"product_recs","export":{"epsilon":0}}"#),
                      422, "invalid_request")
        assertProblem(try await node.call("PUT", "/v1/collections/recs", token: token("serve"), json: "{}"), 403, "forbidden")
        assertProblem(try await node.call("POST", "/v1/collections/recs/search", token: token("ingest"),
                                          json: #"{"vector":[1,2,3,4,5,6,7,8],"purpose":"product_recs"}"#), 403, "forbidden")
        assertProblem(try await node.call("POST", "/v1/collections/recs/search", token: nil, json: "{}"), 401, "unauthorized")

        // Once it holds vectors, the collection's shape is fixed.
        let pid = try await register(email: "shape@example.com")
        try await receipt(pid, "grant", ["product_recs"])
        await XCTAssertEqualAsync(try await putVector(pid, Self.vector(1)).status, 200)
        assertProblem(try await defineCollection(dimension: 16), 409, "collection_in_use")
        await XCTAssertEqualAsync(try await defineCollection(index: #"{"kind":"hnsw","m":8,"ef_construction":64,"ef":128}"#).status, 200,
                                  "the default search width may change")
    }

    func test_vectors_areStoredOnlyUnderConsent_andInvalidOnesRefused() async throws {
        try startNode()
        await XCTAssertEqualAsync(try await defineCollection().status, 201)
        let pid = try await register(email: "vector@example.com")

        assertProblem(try await putVector(pid, Self.vector(1)), 403, "consent_required")
        XCTAssertEqual(try storedVectorCount(pid), 0)
        try await receipt(pid, "grant", ["product_recs"])
        assertProblem(try await putVector(pid, Self.vector(1, dimension: 7)), 422, "invalid_vector")
        assertProblem(try await putVector(pid, [1e39, 0, 0, 0, 0, 0, 0, 0]), 422, "invalid_vector")
        assertProblem(try await putVector(pid, [0, 0, 0, 0, 0, 0, 0, 0]), 422, "invalid_vector")
        assertProblem(try await putVector(pid, Self.vector(1), collection: "nope"), 404, "unknown_collection")
        assertProblem(try await putVector("psn:v1:us:" + String(repeating: "B", count: 42) + "A", Self.vector(1)), 421, "misdirected")
        XCTAssertEqual(try storedVectorCount(pid), 0, "refused writes store nothing")

        let written = try await putVector(pid, Self.vector(1))
        XCTAssertEqual(written.status, 200, written.text)
        XCTAssertEqual(try storedVectorCount(pid), 1)
        // At rest the vector is sealed: no component appears in the file as text or as a float.
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        let sealed = try XCTUnwrap(try database.fetchOne("SELECT sealed_vector FROM vectors WHERE pid = ?", [pid]) { $0.blob(0) })
        let plain = Self.vector(1).map { Float($0) }.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        XCTAssertNil(sealed.firstRange(of: plain[0..<8]), "the first two components appear in the clear")
    }

    func test_search_returnsOnlySubjectsWhoseConsentCoversThePurpose_andAuditsEachSearch() async throws {
        try startNode()
        await XCTAssertEqualAsync(try await defineCollection().status, 201)
        var pids: [String] = []
        for index in 0..<24 {
            let pid = try await register(email: "search-\(index)@example.com")
            pids.append(pid)
            try await receipt(pid, "grant", ["product_recs"])
            await XCTAssertEqualAsync(try await putVector(pid, Self.vector(index * 10)).status, 200)
        }
        // Nearest first, in the API's shape.
        let response = try await search(#"{"vector":\#(Self.json(Self.vector(50))),"k":5,"purpose":"product_recs"}"#)
        XCTAssertEqual(response.status, 200, response.text)
        let results = try XCTUnwrap(response.json["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 5)
        XCTAssertEqual(results.first?["pid"] as? String, pids[5])
        XCTAssertEqual(results.compactMap { $0["score"] as? Double }, results.compactMap { $0["score"] as? Double }.sorted(by: >))
        XCTAssertTrue(results.allSatisfy {
            $0["region"] as? String == "eu" && $0["source"] as? String == "local" && $0["score_kind"] as? String == "exact"
        })
        XCTAssertEqual(response.json["partial"] as? Bool, false)
        let regions = try XCTUnwrap(response.json["regions"] as? [String: [String: Any]])
        XCTAssertEqual(Array(regions.keys), ["eu"], "a local search reports this region alone")
        XCTAssertEqual(regions["eu"]?["status"] as? String, "local")
        XCTAssertEqual(regions["eu"]?["hits"] as? Int, 5)

        // By example: the example's own subject is not among the results.
        let byPID = try await search(#"{"pid":"\#(pids[5])","k":3,"purpose":"product_recs"}"#)
        XCTAssertEqual(byPID.status, 200, byPID.text)
        let similar = (byPID.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
        XCTAssertEqual(similar.count, 3)
        XCTAssertFalse(similar.contains(pids[5]))
        XCTAssertTrue(Set(similar).isSubset(of: [pids[4], pids[6], pids[3], pids[7]]), "\(similar)")

        // Revocation: out of the index (and the table) before the receipt is acknowledged; a new grant does not bring it back.
        try await receipt(pids[5], "revoke", ["product_recs"])
        var found = try await searchPIDs(near: Self.vector(50), k: 24)
        XCTAssertFalse(found.contains(pids[5]))
        XCTAssertEqual(found.count, 23)
        XCTAssertEqual(try storedVectorCount(pids[5]), 0)
        try await receipt(pids[5], "grant", ["product_recs"])
        found = try await searchPIDs(near: Self.vector(50), k: 24)
        XCTAssertFalse(found.contains(pids[5]))
        assertProblem(try await search(#"{"pid":"\#(pids[5])","purpose":"product_recs"}"#), 404, "unknown_vector")

        // GPC withdraws product_recs (a gpc purpose in the default policy).
        await XCTAssertEqualAsync(try await receipt(pids[6], "gpc", []).status, 201)
        found = try await searchPIDs(near: Self.vector(60), k: 24)
        XCTAssertFalse(found.contains(pids[6]))

        // Expiry: eligible until the grant expires, even before the sweeper removes the vector.
        try await receipt(pids[7], "grant", ["product_recs"], expiresAt: Self.rfc3339(secondsFromNow: 2))
        found = try await searchPIDs(near: Self.vector(70), k: 3)
        XCTAssertTrue(found.contains(pids[7]))
        try await Task.sleep(nanoseconds: 2_300_000_000)
        found = try await searchPIDs(near: Self.vector(70), k: 24)
        XCTAssertFalse(found.contains(pids[7]), "an expired grant's vector was returned")

        // Delete.
        let deleted = try await node.call("DELETE", "/v1/collections/recs/vectors/\(pids[8])", token: token("ingest"))
        XCTAssertEqual(deleted.status, 204)
        found = try await searchPIDs(near: Self.vector(80), k: 24)
        XCTAssertFalse(found.contains(pids[8]))

        // Erasure takes the vector out of the index and counts it in the signed ack.
        let erasure = try await node.call("POST", "/v1/erasures", token: token("privacy_officer"), json: #"{"pid":"\#(pids[9])"}"#)
        XCTAssertEqual(erasure.status, 202, erasure.text)
        let acks = ((erasure.json["certificate"] as? [String: Any])?["acks"] as? [[String: Any]]) ?? []
        XCTAssertEqual((acks.first?["counts"] as? [String: Any])?["vectors"] as? Int, 1)
        found = try await searchPIDs(near: Self.vector(90), k: 24)
        XCTAssertFalse(found.contains(pids[9]))

        // Refusals.
        let query = Self.json(Self.vector(1))
        assertProblem(try await search(#"{"vector":\#(query),"k":101,"purpose":"product_recs"}"#), 422, "k_too_large")
        assertProblem(try await search(#"{"vector":\#(query),"purpose":"analytics"}"#), 403, "purpose_mismatch")
        assertProblem(try await search(#"{"vector":\#(query)}"#), 400, "purpose_required")
        assertProblem(try await search(#"{"vector":[1,2],"purpose":"product_recs"}"#), 422, "invalid_vector")
        assertProblem(try await search(#"{"purpose":"product_recs"}"#), 422, "invalid_request")

        // Every search is audited with the count it returned, and no vector.
        let events = try await auditEvents().filter { $0["action"] as? String == "vector.search" }
        XCTAssertGreaterThanOrEqual(events.count, 8)
        XCTAssertTrue(events.contains { ($0["detail"] as? String) == "collection=recs,scope=local,returned=5" })
        XCTAssertTrue(events.allSatisfy { $0["principal"] as? String != nil && ($0["detail"] as? String ?? "").hasPrefix("collection=recs") })
    }

    /// A search for a purpose the collection does not serve is refused as
    /// such first, before its query is read: not answered 421 or 422 for
    /// the example it names.
    func test_search_purposeMismatch_isRefusedBeforeTheQueryIsRead() async throws {
        try startNode()
        await XCTAssertEqualAsync(try await defineCollection().status, 201)
        let foreign = PID(keyVersion: 1, region: try RegionID("us"), digest: [UInt8](repeating: 7, count: PID.digestByteCount))
        assertProblem(try await search(#"{"pid":"\#(foreign)","purpose":"analytics"}"#), 403, "purpose_mismatch")
        assertProblem(try await search(#"{"vector":[1,2],"purpose":"analytics"}"#), 403, "purpose_mismatch")
        assertProblem(try await search(#"{"pid":"\#(foreign)","purpose":"product_recs"}"#), 421, "misdirected")
    }

    /// Enough vectors that searches walk the graph; after SIGKILL and
    /// restart the rebuilt index answers every query the same way.
    func test_restart_rebuildsTheIndex_withTheSameResults() async throws {
        try startNode(regions: ["eu"])
        // fraud_prevention rests on legitimate interest: no receipts needed.
        await XCTAssertEqualAsync(try await defineCollection(purpose: "fraud_prevention").status, 201)
        let count = 2_400
        let node = self.node!
        let ingest = token("ingest")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: count, by: 8) {
                        let registered = try await node.call("POST", "/v1/subjects", token: ingest,
                                                             json: #"{"identifier":{"kind":"customer_id","value":"c\#(index)"},"country":"DE"}"#)
                        guard let pid = registered.json["pid"] as? String else { throw CancellationError() }
                        let vector = Self.json(Self.vector(index))
                        let put = try await node.call("PUT", "/v1/collections/recs/vectors/\(pid)", token: ingest, json: #"{"vector":\#(vector)}"#)
                        guard put.status == 200 else { throw CancellationError() }
                    }
                }
            }
            try await group.waitForAll()
        }
        func answers() async throws -> [String] {
            var answers: [String] = []
            for query in stride(from: 3, to: count, by: 97) {
                let response = try await self.node.call("POST", "/v1/collections/recs/search", token: token("serve"),
                                                        json: #"{"vector":\#(Self.json(Self.vector(query))),"k":10,"purpose":"fraud_prevention"}"#)
                XCTAssertEqual(response.status, 200, response.text)
                // The results; the report's timings differ from run to run.
                let results = try JSONSerialization.data(withJSONObject: response.json["results"] ?? [], options: [.sortedKeys])
                answers.append(String(decoding: results, as: UTF8.self))
            }
            return answers
        }
        let before = try await answers()
        let metrics = try await node.call("GET", "/metrics", token: nil).text
        XCTAssertTrue(metrics.contains(#"domicile_vector_searches_total{plan="graph"}"#), "searches walked the graph")
        node.kill()
        self.node = try federation.start("eu-1")
        let after = try await answers()
        XCTAssertEqual(before, after)
    }
}
