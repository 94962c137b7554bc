import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// `POST /v1/subjects/batch` and `POST /v1/collections/{name}/vectors/batch`
/// on a real node: each item answered, stored and audited as its single
/// call would be, in one request.
final class BatchWriteTests: NodeTestCase {
    static let usPid = "psn:v1:us:" + String(repeating: "B", count: 42) + "A"
    static let unknownEUPid = "psn:v1:eu:" + String(repeating: "B", count: 42) + "A"

    func subject(_ email: String, country: String = "DE") -> String {
        #"{"identifier":{"kind":"email","value":"\#(email)"},"country":"\#(country)"}"#
    }

    func registerBatch(_ subjects: [String]) async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/subjects/batch", token: token("ingest"), json: #"{"subjects":[\#(subjects.joined(separator: ","))]}"#)
    }

    func writeBatch(_ items: [(pid: String, vector: [Double])], collection: String = "recs") async throws -> NodeProcess.Response {
        let entries = items.map { #"{"pid":"\#($0.pid)","vector":\#(VectorTests.json($0.vector))}"# }
        return try await node.call("POST", "/v1/collections/\(collection)/vectors/batch", token: token("ingest"),
                                   json: #"{"vectors":[\#(entries.joined(separator: ","))]}"#)
    }

    func grantBatch(_ pids: [String]) async throws {
        let receipts = pids.map {
            #"{"pid":"\#($0)","action":"grant","purposes":["product_recs"],"source":"test:batch","collected_at":"2026-01-01T00:00:00Z"}"#
        }
        let response = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                           json: #"{"receipts":[\#(receipts.joined(separator: ","))]}"#)
        XCTAssertEqual(response.status, 201, response.text)
    }

    func results(_ response: NodeProcess.Response) -> [[String: Any]] { response.json["results"] as? [[String: Any]] ?? [] }

    func test_subjectBatch_registersEach_andAnswersEachItemAsItsSingleCallWould() async throws {
        try startNode()
        let before = try await auditEvents().count
        let response = try await registerBatch([subject("a@example.com"), subject("b@example.com", country: "FR"),
                                                subject("a@example.com"), subject("c@example.com", country: "US"),
                                                #"{"identifier":{"kind":"fax","value":"1"},"country":"DE"}"#,
                                                #"{"identifier":{"kind":"email","value":"d@example.com"},"region":"eu"}"#])
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.json["count"] as? Int, 6)
        XCTAssertEqual(response.json["succeeded"] as? Int, 4)
        XCTAssertEqual(response.json["failed"] as? Int, 2)
        let items = results(response)
        XCTAssertEqual(items.compactMap { $0["index"] as? Int }, Array(0..<6))
        XCTAssertEqual(items.compactMap { $0["status"] as? Int }, [201, 201, 200, 421, 422, 201])
        XCTAssertEqual(items[2]["pid"] as? String, items[0]["pid"] as? String, "the same identifier twice is one subject")
        XCTAssertEqual(items[2]["created"] as? Bool, false)
        XCTAssertEqual(items[3]["code"] as? String, "misdirected")
        XCTAssertEqual(items[3]["home_region"] as? String, "us", "another region's subject gets its 421 facts, not a failed batch")
        XCTAssertEqual(items[4]["code"] as? String, "invalid_identifier")
        XCTAssertNil(items[4]["pid"])

        // The same pid a single registration finds.
        let lookup = try await node.call("POST", "/v1/subjects/lookup", token: token("ingest"),
                                         json: #"{"identifier":{"kind":"email","value":"b@example.com"}}"#)
        XCTAssertEqual(lookup.json["pid"] as? String, items[1]["pid"] as? String)
        // One subject.register event per stored item, as single calls write.
        let events = try await auditEvents().dropFirst(before).filter { $0["action"] as? String == "subject.register" }
        XCTAssertEqual(events.compactMap { $0["outcome"] as? String }, ["created", "created", "existing", "created"])
        XCTAssertFalse(response.text.contains("a@example.com"), "no identifier in the answer")
    }

    func test_vectorBatch_writesEachUnderConsent_andRefusesItemsAlone_auditedPerItem() async throws {
        try startNode()
        await XCTAssertEqualAsync(try await defineCollection().status, 201)
        let registered = try await registerBatch((0..<4).map { subject("v\($0)@example.com") })
        let pids = results(registered).compactMap { $0["pid"] as? String }
        XCTAssertEqual(pids.count, 4)
        try await grantBatch(Array(pids[0..<3]))
        let before = try await auditEvents().count

        let response = try await writeBatch([(pids[0], VectorTests.vector(1)), (pids[1], VectorTests.vector(2)),
                                             (pids[3], VectorTests.vector(3)),                // no consent
                                             (pids[2], VectorTests.vector(4, dimension: 7)),  // wrong dimension
                                             (Self.unknownEUPid, VectorTests.vector(5)),     // no such subject
                                             (Self.usPid, VectorTests.vector(6)),            // another region's
                                             ("nonsense", VectorTests.vector(7))])
        XCTAssertEqual(response.status, 200, response.text)
        let items = results(response)
        XCTAssertEqual(items.compactMap { $0["status"] as? Int }, [200, 200, 403, 422, 404, 421, 400])
        XCTAssertEqual(items.compactMap { $0["code"] as? String },
                       ["consent_required", "invalid_vector", "unknown_subject", "misdirected", "invalid_pid"])
        XCTAssertEqual(items[5]["home_region"] as? String, "us")
        XCTAssertEqual(response.json["succeeded"] as? Int, 2)

        // Audited per item as each single call is: a vector.write for each
        // stored, its refusal for each refused subject of this region.
        let events = try await auditEvents().dropFirst(before).map {
            "\($0["action"] as? String ?? "?") \($0["pid"] as? String ?? "-") \($0["outcome"] as? String ?? "?")"
        }
        XCTAssertEqual(Set(events), ["vector.write \(pids[0]) ok", "vector.write \(pids[1]) ok",
                                     "vector.write \(pids[3]) refused:consent_required",
                                     "request.refused \(pids[2]) refused:invalid_vector",
                                     "vector.write \(Self.unknownEUPid) refused:unknown_subject"])
        XCTAssertEqual(events.count, 5)
        // Stored (sealed) and indexed: the two written, nothing of the refused.
        XCTAssertEqual(try storedVectorCount(pids[0]), 1)
        XCTAssertEqual(try storedVectorCount(pids[1]), 1)
        XCTAssertEqual(try storedVectorCount(pids[2]), 0)
        XCTAssertEqual(try storedVectorCount(pids[3]), 0)
        let found = try await searchPIDs(near: VectorTests.vector(1))
        XCTAssertEqual(Set(found), Set(pids[0..<2]))

        XCTAssertFalse(response.text.contains(String(VectorTests.vector(1)[0])), "no vector component in the answer")
    }

    /// A batch large enough to be linked on every core in the background:
    /// each stored vector is found by itself and no refused item reaches
    /// the index; a later batch that rewrites and repeats pids leaves each
    /// with its last vector.
    func test_vectorBatch_linkedTogether_findsEachStoredVector_andNoneRefused() async throws {
        try startNode()
        await XCTAssertEqualAsync(try await defineCollection().status, 201)
        let count = 200, granted = 150
        XCTAssertGreaterThan(granted, 64, "enough stored vectors for the parallel link (VectorService.parallelLinkMin)")
        let registered = try await registerBatch((0..<count).map { subject("linked\($0)@example.com") })
        let pids = results(registered).compactMap { $0["pid"] as? String }
        XCTAssertEqual(pids.count, count)
        try await grantBatch(Array(pids[0..<granted]))

        // New pids only (a pid sent twice, or already present, is linked before the call returns).
        let response = try await writeBatch(pids.indices.map { (pids[$0], VectorTests.vector($0 * 10)) })
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(results(response).compactMap { $0["status"] as? Int },
                       Array(repeating: 200, count: granted) + Array(repeating: 403, count: count - granted))

        for index in 0..<count {
            let found = try await searchPIDs(near: VectorTests.vector(index * 10))
            if index < granted {
                XCTAssertEqual(found.first, pids[index], "stored vector \(index) is its own nearest")
            } else {
                XCTAssertFalse(found.contains(pids[index]), "refused vector \(index) is not indexed")
            }
        }
        let again = try await writeBatch([(pids[0], VectorTests.vector(5_000)), (pids[1], VectorTests.vector(6_000)),
                                          (pids[0], VectorTests.vector(7_000))])
        XCTAssertEqual(results(again).compactMap { $0["status"] as? Int }, [200, 200, 200])
        XCTAssertEqual(try storedVectorCount(pids[0]), 1)
        let last = try await searchPIDs(near: VectorTests.vector(7_000))
        XCTAssertEqual(last.first, pids[0], "a pid sent twice keeps its last vector")
        let rewritten = try await searchPIDs(near: VectorTests.vector(6_000))
        XCTAssertEqual(rewritten.first, pids[1])
    }

    /// Revocations sent while a batch holding the subjects' vectors is being
    /// written (its links made in the background) are never overtaken by
    /// them: once all are answered, no search finds a revoked subject. The
    /// revocations are spread over the batch's time; each lands before its
    /// subject's row (the item is refused) or after it (the vector stored,
    /// then made ineligible). `VectorIndexTests` pins the ordering itself.
    func test_revocationsDuringABatch_areNotOvertakenByItsLinks() async throws {
        try startNode()
        // Wide vectors and a deep construction, so that linking a batch takes long enough for revocations to land in it.
        await XCTAssertEqualAsync(try await node.call("PUT", "/v1/collections/race", token: token("admin"), json: """
            {"dimension":256,"metric":"cosine","purpose":"product_recs","index":{"kind":"hnsw","m":16,"ef_construction":400}}
            """).status, 201)
        let count = 600, delays = [10, 25, 40, 55, 70, 85, 100, 120, 140, 160, 190, 220, 260, 300]
        func vector(_ index: Int) -> [Double] { VectorTests.vector(index, dimension: 256) }
        for round in 0..<2 {
            let registered = try await registerBatch((0..<count).map { subject("race\(round)-\($0)@example.com") })
            let pids = results(registered).compactMap { $0["pid"] as? String }
            XCTAssertEqual(pids.count, count)
            try await grantBatch(pids)
            let revoked = delays.indices.map { ($0 * 37 + round) % count }
            let entries = pids.indices.map { #"{"pid":"\#(pids[$0])","vector":\#(VectorTests.json(vector(round * 10_000 + $0 * 10)))}"# }
            let node: NodeProcess = node, ingest = token("ingest")
            let revocations = zip(delays, revoked).map { delay, row in
                let pid = pids[row]
                return Task {
                    try await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000)
                    return try await node.call("POST", "/v1/subjects/\(pid)/consents", token: ingest, json: """
                        {"action":"revoke","purposes":["product_recs"],"source":"test:race","collected_at":"2026-01-02T00:00:00Z"}
                        """).status
                }
            }
            let batch = try await node.call("POST", "/v1/collections/race/vectors/batch", token: ingest,
                                            json: #"{"vectors":[\#(entries.joined(separator: ","))]}"#)
            XCTAssertEqual(batch.status, 200, batch.text)
            for revocation in revocations { await XCTAssertEqualAsync(try await revocation.value, 201) }
            let statuses = results(batch).compactMap { $0["status"] as? Int }
            for row in revoked {
                // Stored before the revocation (200), or refused after it (403): never found either way.
                XCTAssertTrue([200, 403].contains(statuses[row]))
                let response = try await node.call("POST", "/v1/collections/race/search", token: token("serve"),
                                                   json: #"{"vector":\#(VectorTests.json(vector(round * 10_000 + row * 10))),"k":10,"purpose":"product_recs"}"#)
                let found = (response.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
                XCTAssertFalse(found.contains(pids[row]), "round \(round): revoked subject \(row) was found")
                XCTAssertFalse(found.isEmpty)
            }
        }
    }

    func test_batches_areBoundedByTheConfiguredLimits() async throws {
        try startNode { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["batch_items_max"] = 3
            limits["batch_body_bytes_max"] = 2_048
            config["limits"] = limits
        }
        await XCTAssertEqualAsync(try await defineCollection().status, 201)
        let three = try await registerBatch((0..<3).map { subject("l\($0)@example.com") })
        XCTAssertEqual(three.status, 200, three.text)
        assertProblem(try await registerBatch((0..<4).map { subject("m\($0)@example.com") }), 422, "batch_too_large")
        assertProblem(try await registerBatch([]), 422, "invalid_request")
        let pid = try XCTUnwrap(results(three).first?["pid"] as? String)
        assertProblem(try await writeBatch(Array(repeating: (pid, VectorTests.vector(1)), count: 4)), 422, "batch_too_large")
        assertProblem(try await writeBatch([]), 422, "invalid_request")
        // Over the body limit: refused before it is read, nothing registered.
        let padded = subject("big@example.com").replacingOccurrences(of: "\"country\"", with: "\"pad\":\"\(String(repeating: "x", count: 3_000))\",\"country\"")
        let tooBig = try await registerBatch([padded])
        XCTAssertEqual(tooBig.status, 413, tooBig.text)
        let lookup = try await node.call("POST", "/v1/subjects/lookup", token: token("ingest"),
                                         json: #"{"identifier":{"kind":"email","value":"big@example.com"}}"#)
        assertProblem(lookup, 404, "unknown_subject")
        assertProblem(try await writeBatch([(pid, VectorTests.vector(1))], collection: "nope"), 404, "unknown_collection")
    }

    // MARK: Helpers

    func defineCollection(_ name: String = "recs") async throws -> NodeProcess.Response {
        try await node.call("PUT", "/v1/collections/\(name)", token: token("admin"), json: """
            {"dimension":8,"metric":"cosine","purpose":"product_recs","index":{"kind":"hnsw","m":8,"ef_construction":64}}
            """)
    }

    func searchPIDs(near vector: [Double]) async throws -> [String] {
        let response = try await node.call("POST", "/v1/collections/recs/search", token: token("serve"),
                                           json: #"{"vector":\#(VectorTests.json(vector)),"k":10,"purpose":"product_recs"}"#)
        XCTAssertEqual(response.status, 200, response.text)
        return (response.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
    }

    func storedVectorCount(_ pid: String) throws -> Int {
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        return try database.fetchOne("SELECT count(*) FROM vectors WHERE pid = ?", [pid]) { Int($0.int64(0)) } ?? -1
    }
}
