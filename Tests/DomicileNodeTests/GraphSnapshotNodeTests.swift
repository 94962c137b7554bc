import DomicileTestSupport
import Foundation
import XCTest

/// Graph snapshots in a real node process (docs/DECISIONS.md, "Graph
/// snapshots"): written at a graceful stop, restored at start and replayed
/// forward from SQLite after a SIGKILL, and rebuilt when damaged.
final class GraphSnapshotNodeTests: NodeTestCase {
    static let count = 2_400

    static func vector(_ index: Int) -> String {
        let components = (0..<16).map { (component: Int) -> String in
            let angle = Double(index) * 0.013 + Double(component) * 0.7
            return String(sin(angle) + Double(component % 5) * 0.05)
        }
        return "[" + components.joined(separator: ",") + "]"
    }

    private var snapshotPath: String { federation.dataDirectory("eu-1") + "/graphs/recs.graph" }

    private func start() throws {
        // Only a stop saves: the background tick sees a collection it never saved at most once, 5 s after start.
        try startNode(regions: ["eu"]) { _, config in
            config["limits"] = ["graph_snapshot_interval_ms": 86_400_000, "graph_snapshot_changes": 100_000_000]
        }
    }

    private func restart() throws { node = try federation.start("eu-1") }

    /// Registers subjects `c{from}`… and writes their vectors, from 8 clients at once; returns their pids.
    @discardableResult
    private func write(_ rows: Range<Int>) async throws -> [Int: String] {
        let node = self.node!, ingest = token("ingest")
        return try await withThrowingTaskGroup(of: [Int: String].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var pids: [Int: String] = [:]
                    for row in stride(from: rows.lowerBound + worker, to: rows.upperBound, by: 8) {
                        let registered = try await node.call("POST", "/v1/subjects", token: ingest,
                                                             json: #"{"identifier":{"kind":"customer_id","value":"c\#(row)"},"country":"DE"}"#)
                        guard let pid = registered.json["pid"] as? String else { throw CancellationError() }
                        let put = try await node.call("PUT", "/v1/collections/recs/vectors/\(pid)", token: ingest,
                                                      json: #"{"vector":\#(Self.vector(row))}"#)
                        guard put.status == 200 else { throw CancellationError() }
                        pids[row] = pid
                    }
                    return pids
                }
            }
            return try await group.reduce(into: [:]) { $0.merge($1) { a, _ in a } }
        }
    }

    /// Graph searches (the planner walks above 2 048 vectors): their results, in order.
    private func answers() async throws -> [String] {
        var answers: [String] = []
        for query in stride(from: 5, to: Self.count + 300, by: 61) {
            let response = try await node.call("POST", "/v1/collections/recs/search", token: token("serve"),
                                               json: #"{"vector":\#(Self.vector(query)),"k":10,"ef":24,"purpose":"fraud_prevention"}"#)
            XCTAssertEqual(response.status, 200, response.text)
            let results = try JSONSerialization.data(withJSONObject: response.json["results"] ?? [], options: [.sortedKeys])
            answers.append(String(decoding: results, as: UTF8.self))
        }
        return answers
    }

    private func logged(_ event: String) -> [String] { node.logLines.filter { $0.contains(#""event":"\#(event)""#) } }

    /// Saved in the background: a node with a short interval saves its
    /// changed graphs on its own; killed later, it restores on restart
    /// (whatever the last save held, the rest replayed from SQLite).
    func test_backgroundSave_survivesASIGKILL() async throws {
        try startNode(regions: ["eu"]) { _, config in
            config["limits"] = ["graph_snapshot_interval_ms": 200, "graph_snapshot_changes": 1]
        }
        let define = try await node.call("PUT", "/v1/collections/recs", token: token("admin"), json: """
            {"dimension":16,"metric":"cosine","purpose":"fraud_prevention","index":{"kind":"hnsw","m":8,"ef_construction":64}}
            """)
        XCTAssertEqual(define.status, 201, define.text)
        try await write(0..<400)
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: snapshotPath) && Date() < deadline { try await Task.sleep(nanoseconds: 100_000_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: snapshotPath), "saved in the background")
        let live = try await answers()
        node.kill()
        // What a save cut short by the kill would have left.
        let leftover = federation.dataDirectory("eu-1") + "/graphs/recs.graph.tmp-1"
        XCTAssertTrue(FileManager.default.createFile(atPath: leftover, contents: Data([1, 2, 3])))
        try restart()
        XCTAssertEqual(logged("graph restored").count, 1, node.logLines.joined(separator: "\n"))
        let afterCrash = try await answers()
        XCTAssertEqual(afterCrash, live)
        XCTAssertFalse(FileManager.default.fileExists(atPath: leftover), "a save's leftover is removed at start")
    }

    /// A saved graph names its subjects (pids and their neighbours, sealed
    /// under the region's data key, which outlives a subject's): an erasure
    /// removes it, and the saver writes it again without the subject.
    func test_erasure_removesTheSavedGraph_andTheNextSaveLeavesTheSubjectOut() async throws {
        try start()
        let define = try await node.call("PUT", "/v1/collections/recs", token: token("admin"), json: """
            {"dimension":16,"metric":"cosine","purpose":"fraud_prevention","index":{"kind":"hnsw","m":8,"ef_construction":64}}
            """)
        XCTAssertEqual(define.status, 201, define.text)
        let pids = try await write(0..<300)
        XCTAssertEqual(node.stop(), 0)
        let before = try XCTUnwrap(FileManager.default.contents(atPath: snapshotPath))
        try restart()

        let erase = try await node.call("POST", "/v1/erasures", token: token("privacy_officer"), json: #"{"pid":"\#(try XCTUnwrap(pids[5]))"}"#)
        XCTAssertEqual(erase.status, 202, erase.text)
        let id = try XCTUnwrap(erase.json["erasure_id"] as? String)
        var status = ""
        for _ in 0..<300 where status != "complete" {
            status = try await node.call("GET", "/v1/erasures/\(id)", token: token("privacy_officer")).json["status"] as? String ?? ""
            if status != "complete" { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertEqual(status, "complete")
        // Saved again at the saver's next look (every 5 s), though the interval is a day and the change threshold far off.
        var resaved = false
        for _ in 0..<300 where !resaved {
            resaved = FileManager.default.contents(atPath: snapshotPath).map { $0 != before } ?? false
            if !resaved { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertTrue(resaved, "the graph saved before the erasure was replaced")
        node.kill()
        try restart()
        let restored = logged("graph restored")
        XCTAssertEqual(restored.count, 1, node.logLines.joined(separator: "\n"))
        XCTAssertTrue(restored[0].contains(#""retired":0"#) && restored[0].contains(#""vectors":299"#), restored[0])
    }

    func test_snapshotAtStop_thenWritesAndADelete_thenSIGKILL_restoresTheSameAnswers_andDamageRebuilds() async throws {
        try start()
        let define = try await node.call("PUT", "/v1/collections/recs", token: token("admin"), json: """
            {"dimension":16,"metric":"cosine","purpose":"fraud_prevention","index":{"kind":"hnsw","m":8,"ef_construction":64}}
            """)
        XCTAssertEqual(define.status, 201, define.text)
        let pids = try await write(0..<Self.count)

        // A graceful stop saves the graph; the next start restores it, nothing to replay.
        XCTAssertEqual(node.stop(), 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: snapshotPath))
        let saved = try XCTUnwrap(FileManager.default.contents(atPath: snapshotPath))
        for row in [0, 7, 1_000] {
            let pid = try XCTUnwrap(pids[row])
            XCTAssertNil(saved.range(of: Data(pid.utf8)), "no label in clear")
        }
        try restart()
        XCTAssertEqual(logged("graph restored").count, 1, node.logLines.joined(separator: "\n"))
        XCTAssertTrue(logged("graph restored")[0].contains(#""replayed":0"#))

        // After the snapshot: a delete and more writes; then the process is killed, no snapshot taken.
        let deleted = try await node.call("DELETE", "/v1/collections/recs/vectors/\(try XCTUnwrap(pids[7]))", token: token("ingest"))
        XCTAssertEqual(deleted.status, 204, deleted.text)
        try await write(Self.count..<(Self.count + 300))
        let live = try await answers()
        let metrics = try await node.call("GET", "/metrics", token: nil).text
        XCTAssertTrue(metrics.contains(#"domicile_vector_searches_total{plan="graph"}"#), "searches walked the graph")
        node.kill()

        // The snapshot plus what SQLite holds after it: the same answers as the index that never restarted.
        try restart()
        let restored = logged("graph restored")
        XCTAssertEqual(restored.count, 1, node.logLines.joined(separator: "\n"))
        XCTAssertTrue(restored[0].contains(#""retired":1"#) && restored[0].contains(#""replayed":300"#), restored[0])
        let afterCrash = try await answers()
        XCTAssertEqual(afterCrash, live)

        // A damaged snapshot is detected and the collection rebuilt, as a fresh build does.
        XCTAssertEqual(node.stop(), 0)
        var damaged = try XCTUnwrap(FileManager.default.contents(atPath: snapshotPath))
        damaged[damaged.count / 2] ^= 0x5a
        try damaged.write(to: URL(fileURLWithPath: snapshotPath))
        try restart()
        XCTAssertEqual(logged("graph restored").count, 0)
        XCTAssertEqual(logged("saved graph not used: rebuilding").count, 1, node.logLines.joined(separator: "\n"))
        let rebuiltFromDamage = try await answers()
        XCTAssertEqual(node.stop(), 0)
        try FileManager.default.removeItem(atPath: snapshotPath)
        try restart()
        XCTAssertEqual(logged("saved graph not used: rebuilding").count, 0)
        let fresh = try await answers()
        XCTAssertEqual(rebuiltFromDamage, fresh)

        // A truncated one likewise.
        XCTAssertEqual(node.stop(), 0)
        let whole = try XCTUnwrap(FileManager.default.contents(atPath: snapshotPath))
        try whole.prefix(whole.count - 100).write(to: URL(fileURLWithPath: snapshotPath))
        try restart()
        XCTAssertEqual(logged("saved graph not used: rebuilding").count, 1)
        let rebuiltFromTruncation = try await answers()
        XCTAssertEqual(rebuiltFromTruncation, fresh)
    }
}
