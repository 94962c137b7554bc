import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// A vector batch in a region of three nodes with a region log: sent to a
/// follower, it is forwarded to the leader and committed as one log entry
/// (its one write transaction), and every node then holds every vector.
final class BatchRegionLogTests: XCTestCase {
    var federation: FederationFixture!
    var nodes: [String: NodeProcess] = [:]
    let names = ["eu-1", "eu-2", "eu-3"]

    override func setUp() async throws {
        federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 3, regionLog: true)
        for name in names { nodes[name] = try federation.start(name) }
        for name in names {
            var ready = false
            for _ in 0..<200 where !ready {
                ready = (try? await nodes[name]!.call("GET", "/readyz", token: nil))?.status == 200
                if !ready { try await Task.sleep(nanoseconds: 50_000_000) }
            }
            XCTAssertTrue(ready, "\(name) became ready")
        }
    }

    override func tearDown() {
        for node in nodes.values { node.kill() }
        nodes = [:]
        super.tearDown()
    }

    func call(_ node: String, _ method: String, _ path: String, role: String, json: String? = nil) async throws -> NodeProcess.Response {
        try await nodes[node]!.call(method, path, token: federation.token(role), json: json)
    }

    func regionLog(_ node: String) async throws -> [String: Any] {
        let response = try await call(node, "GET", "/v1/cluster", role: "admin")
        return response.json["region_log"] as? [String: Any] ?? [:]
    }

    func leader() async throws -> String {
        for _ in 0..<200 {
            for name in names where try await regionLog(name)["role"] as? String == "leader" { return name }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTFail("no leader")
        throw CancellationError()
    }

    func vectorCount(on node: String) throws -> Int {
        let database = try Database(path: federation.dataDirectory(node) + "/node.sqlite")
        return try database.fetchOne("SELECT count(*) FROM vectors") { Int($0.int64(0)) } ?? -1
    }

    func test_aVectorBatchSentToAFollower_isOneLogEntry_andReachesEveryNode() async throws {
        let leader = try await leader()
        let follower = try XCTUnwrap(names.first { $0 != leader })
        let defined = try await call(follower, "PUT", "/v1/collections/recs", role: "admin", json: """
            {"dimension":8,"metric":"cosine","purpose":"product_recs","index":{"kind":"hnsw","m":8,"ef_construction":64}}
            """)
        XCTAssertEqual(defined.status, 201, defined.text)
        let subjects = (0..<50).map { #"{"identifier":{"kind":"email","value":"log\#($0)@example.com"},"country":"DE"}"# }
        let registered = try await call(follower, "POST", "/v1/subjects/batch", role: "ingest", json: #"{"subjects":[\#(subjects.joined(separator: ","))]}"#)
        let pids = (registered.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
        XCTAssertEqual(pids.count, 50, registered.text)
        let receipts = pids.map {
            #"{"pid":"\#($0)","action":"grant","purposes":["product_recs"],"source":"test:log","collected_at":"2026-01-01T00:00:00Z"}"#
        }
        let granted = try await call(follower, "POST", "/v1/consents/batch", role: "ingest", json: #"{"receipts":[\#(receipts.joined(separator: ","))]}"#)
        XCTAssertEqual(granted.status, 201, granted.text)

        let before = try await regionLog(leader)["commit_index"] as? Int ?? 0
        let entries = pids.enumerated().map { index, pid in
            #"{"pid":"\#(pid)","vector":\#(VectorTests.json(VectorTests.vector(index)))}"#
        }
        let written = try await call(follower, "POST", "/v1/collections/recs/vectors/batch", role: "ingest",
                                     json: #"{"vectors":[\#(entries.joined(separator: ","))]}"#)
        XCTAssertEqual(written.status, 200, written.text)
        XCTAssertEqual(written.json["succeeded"] as? Int, 50, written.text)
        let after = try await regionLog(leader)["commit_index"] as? Int ?? 0
        // 50 single writes are 50 entries; the batch is one (and nothing else writes meanwhile but, at most, a background task).
        XCTAssertGreaterThanOrEqual(after - before, 1)
        XCTAssertLessThanOrEqual(after - before, 3, "one entry for the batch")

        for name in names {
            var count = 0
            for _ in 0..<200 where count < 50 {
                count = try vectorCount(on: name)
                if count < 50 { try await Task.sleep(nanoseconds: 25_000_000) }
            }
            XCTAssertEqual(count, 50, "\(name) holds every vector of the batch")
        }
        let search = try await call(follower, "POST", "/v1/collections/recs/search", role: "serve",
                                    json: #"{"vector":\#(VectorTests.json(VectorTests.vector(3))),"k":3,"purpose":"product_recs"}"#)
        XCTAssertEqual((search.json["results"] as? [[String: Any]])?.first?["pid"] as? String, pids[3])
    }
}
