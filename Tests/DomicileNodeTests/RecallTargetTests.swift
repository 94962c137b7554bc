import DomicileVectors
import DomicileTestSupport
import Foundation
import XCTest

/// A collection with `index.target_recall` on a real node: the node
/// calibrates its search width in the background, reports it in
/// `GET /v1/collections/{name}`, searches without `ef` reach the target on
/// queries it never saw, and enough new data makes it measure again.
final class RecallTargetTests: NodeTestCase {
    static let dimension = 32
    static let (data, queries) = SyntheticVectors.clustered(count: 5_100, dimension: dimension, clusters: 30, seed: 5).split(at: 5_000)
    /// The stated tolerance: 200 sampled vectors estimate recall@10 to
    /// about ±0.01, and held-out queries are not stored vectors.
    static let tolerance = 0.03

    func define(target: String?, kind: String = "hnsw") async throws -> NodeProcess.Response {
        let targetField = target.map { #","target_recall":\#($0)"# } ?? ""
        return try await node.call("PUT", "/v1/collections/recall", token: token("admin"), json: """
            {"dimension":\(Self.dimension),"metric":"l2","purpose":"product_recs","index":{"kind":"\(kind)","m":4,"ef_construction":16,"ef":10\(targetField)}}
            """)
    }

    /// Registers, grants and writes data rows `range` through the batch endpoints.
    func load(_ range: Range<Int>) async throws {
        for chunk in stride(from: range.lowerBound, to: range.upperBound, by: 1_000).map({ $0..<min($0 + 1_000, range.upperBound) }) {
            let subjects = chunk.map { #"{"identifier":{"kind":"email","value":"r\#($0)@example.com"},"country":"DE"}"# }
            let registered = try await node.call("POST", "/v1/subjects/batch", token: token("ingest"),
                                                 json: #"{"subjects":[\#(subjects.joined(separator: ","))]}"#)
            let pids = (registered.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
            XCTAssertEqual(pids.count, chunk.count, registered.text)
            let receipts = pids.map {
                #"{"pid":"\#($0)","action":"grant","purposes":["product_recs"],"source":"test:recall","collected_at":"2026-01-01T00:00:00Z"}"#
            }
            let granted = try await node.call("POST", "/v1/consents/batch", token: token("ingest"),
                                              json: #"{"receipts":[\#(receipts.joined(separator: ","))]}"#)
            XCTAssertEqual(granted.status, 201, granted.text)
            let vectors = zip(pids, chunk).map { pid, row in
                #"{"pid":"\#(pid)","vector":[\#(Self.data[row].map { String($0) }.joined(separator: ","))]}"#
            }
            let written = try await node.call("POST", "/v1/collections/recall/vectors/batch", token: token("ingest"),
                                              json: #"{"vectors":[\#(vectors.joined(separator: ","))]}"#)
            XCTAssertEqual(written.json["succeeded"] as? Int, chunk.count, written.text)
            rowOf.merge(zip(pids, chunk)) { $1 }
        }
    }

    var rowOf: [String: Int] = [:]

    /// The calibration once it has measured `vectors` vectors (polled: it runs in the background).
    func calibration(measuring vectors: Int) async throws -> [String: Any] {
        for _ in 0..<600 {
            let response = try await node.call("GET", "/v1/collections/recall", token: token("serve"))
            XCTAssertEqual(response.status, 200, response.text)
            if let calibration = response.json["calibration"] as? [String: Any], calibration["vectors"] as? Int == vectors { return calibration }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTFail("no calibration of \(vectors) vectors within a minute")
        return [:]
    }

    /// Recall@10 of searches without ef through the API, against the exact
    /// nearest of the first `count` data rows.
    func heldOutRecall(over count: Int, ef: Int? = nil) async throws -> Double {
        let efField = ef.map { #","ef":\#($0)"# } ?? ""
        var found = 0
        for row in 0..<Self.queries.count {
            let query = Self.queries[row]
            let distances = (0..<count).map { (row: $0, distance: distance(Self.data[$0], query)) }
            let truth = Set(distances.sorted { $0.distance < $1.distance }.prefix(10).map(\.row))
            let response = try await node.call("POST", "/v1/collections/recall/search", token: token("serve"),
                                               json: #"{"vector":[\#(query.map { String($0) }.joined(separator: ","))],"k":10\#(efField),"purpose":"product_recs"}"#)
            XCTAssertEqual(response.status, 200, response.text)
            let rows = (response.json["results"] as? [[String: Any]] ?? []).compactMap { ($0["pid"] as? String).flatMap { rowOf[$0] } }
            found += rows.filter(truth.contains).count
        }
        return Double(found) / Double(Self.queries.count * 10)
    }

    func distance(_ a: [Float], _ b: [Float]) -> Float {
        var sum: Float = 0
        for index in a.indices { sum += (a[index] - b[index]) * (a[index] - b[index]) }
        return sum
    }

    func test_targetRecall_calibratesEF_reachesTheTargetOnHeldOutQueries_andFollowsTheData() async throws {
        try startNode()
        // Loaded first without a target, so the first measurement sees exactly these vectors.
        let created = try await define(target: nil)
        XCTAssertEqual(created.status, 201, created.text)
        XCTAssertTrue(created.json["calibration"] is NSNull, "no target, no calibration")
        try await load(0..<3_000)
        let redefined = try await define(target: "0.95")
        XCTAssertEqual(redefined.status, 200, redefined.text)
        XCTAssertEqual((redefined.json["index"] as? [String: Any])?["target_recall"] as? Double, 0.95)

        let first = try await calibration(measuring: 3_000)
        let ef = try XCTUnwrap(first["ef"] as? Int)
        XCTAssertGreaterThan(ef, 10, "the default ef (10) of this sparse graph falls short of 0.95")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(first["estimated_recall"] as? Double), 0.95)
        XCTAssertEqual(first["sample"] as? Int, RecallCalibration.sampleSize)
        let recall = try await heldOutRecall(over: 3_000)
        XCTAssertGreaterThanOrEqual(recall, 0.95 - Self.tolerance, "searches without ef use the calibrated ef \(ef)")
        let narrow = try await heldOutRecall(over: 3_000, ef: 10)
        XCTAssertLessThan(narrow, 0.95 - Self.tolerance, "a search may still pass its own ef (here the default, too narrow)")

        // As many writes as half the vectors measured: measured again, on the grown collection.
        try await load(3_000..<5_000)
        let second = try await calibration(measuring: 5_000)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(second["estimated_recall"] as? Double), 0.95)
        let grownRecall = try await heldOutRecall(over: 5_000)
        XCTAssertGreaterThanOrEqual(grownRecall, 0.95 - Self.tolerance)
    }

    func test_targetRecall_isValidated() async throws {
        try startNode()
        for target in ["0.3", "1.0", "0.9995", "-1"] {
            assertProblem(try await define(target: target), 422, "invalid_request")
        }
        assertProblem(try await define(target: "0.9", kind: "flat"), 422, "invalid_request")
        assertProblem(try await define(target: #""high""#), 400, "invalid_json")
        let defined = try await define(target: "0.999")
        XCTAssertEqual(defined.status, 201, defined.text)
        let read = try await node.call("GET", "/v1/collections/recall", token: token("admin"))
        XCTAssertEqual((read.json["index"] as? [String: Any])?["target_recall"] as? Double, 0.999)
        XCTAssertTrue(read.json["calibration"] is NSNull, "nothing to measure yet")
        assertProblem(try await node.call("GET", "/v1/collections/recall", token: token("ingest")), 403, "forbidden")
        assertProblem(try await node.call("GET", "/v1/collections/none", token: token("serve")), 404, "unknown_collection")
    }
}
