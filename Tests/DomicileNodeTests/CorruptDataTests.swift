import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// Stored values that do not decode are refused with a typed error, never
/// dropped or replaced by a default, and never echoed.
final class CorruptDataTests: NodeTestCase {
    private func tamper(_ sql: String, _ arguments: [any DatabaseValueConvertible]) throws {
        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        try database.execute(sql, arguments)
        XCTAssertEqual(database.changes, 1, sql)
    }

    func test_unknownStoredEnumValues_are500CorruptData_namingTableAndColumn() async throws {
        try startNode(regions: ["eu"])
        let pid = try await register(email: "corrupt@example.com")
        let granted = try await receipt(pid, "grant", ["product_recs"])
        XCTAssertEqual(granted.status, 201, granted.text)
        node.stop()
        try tamper("UPDATE consent_receipts SET action = 'frobnicate' WHERE pid = ?", [pid])
        try tamper("UPDATE consent_active SET basis = 'whim' WHERE pid = ?", [pid])
        node = try federation.start("eu-1")

        let history = try await node.call("GET", "/v1/subjects/\(pid)/consents", token: token("serve"))
        assertProblem(history, 500, "corrupt_data")
        let active = try await node.call("GET", "/v1/subjects/\(pid)/consent", token: token("serve"))
        assertProblem(active, 500, "corrupt_data")
        for response in [history, active] {
            XCTAssertFalse(response.text.contains("frobnicate") || response.text.contains("whim"), response.text)
        }
        // Log lines are written by the node's log thread, after the response may have left: wait for the
        // last one (lines keep their order) before reading them all.
        _ = node.process.waitForLine(timeout: 30) { $0.contains(#""event":"corrupt data""#) && $0.contains("consent_active.basis") }
        let logged = node.logLines.filter { $0.contains(#""event":"corrupt data""#) }
        XCTAssertTrue(logged.contains { $0.contains("consent_receipts.action") }, "\(logged)")
        XCTAssertTrue(logged.contains { $0.contains("consent_active.basis") }, "\(logged)")
        XCTAssertFalse(logged.contains { $0.contains("frobnicate") || $0.contains("whim") })
    }

    /// A release whose stored result does not decode is corrupt, not "no release".
    func test_aStoredReleaseThatDoesNotDecode_is500CorruptData_notAbsent() async throws {
        try startNode(regions: ["eu"])
        let released = try await node.call("POST", "/v1/aggregates", token: token("analyst"),
                                           json: #"{"name":"subjects","kind":"count","epsilon":0.5}"#)
        XCTAssertEqual(released.status, 201, released.text)
        node.stop()
        try tamper("UPDATE aggregate_releases SET result = 'not a result' WHERE name = ?", ["subjects"])
        node = try federation.start("eu-1")
        assertProblem(try await node.call("GET", "/v1/aggregates/subjects", token: token("analyst")), 500, "corrupt_data")
    }

    func test_aStoredVectorThatDoesNotOpen_stopsTheNodeFromStarting_insteadOfVanishing() async throws {
        try startNode(regions: ["eu"])
        let pid = try await register(email: "vector@example.com")
        let granted = try await receipt(pid, "grant", ["product_recs"])
        XCTAssertEqual(granted.status, 201, granted.text)
        let defined = try await node.call("PUT", "/v1/collections/recs", token: token("admin"), json: """
            {"dimension":4,"metric":"cosine","purpose":"product_recs","index":{"kind":"flat"}}
            """)
        XCTAssertEqual(defined.status, 201, defined.text)
        let put = try await node.call("PUT", "/v1/collections/recs/vectors/\(pid)", token: token("ingest"), json: #"{"vector":[1,0,0,0]}"#)
        XCTAssertTrue([200, 201].contains(put.status), put.text)
        node.stop()
        try tamper("UPDATE vectors SET sealed_vector = ? WHERE pid = ?", [[UInt8](repeating: 7, count: 60), pid])

        let start = try Binary.run(["serve", "--config", federation.configPath("eu-1")])
        XCTAssertEqual(start.status, 1)
        XCTAssertTrue(start.stderr.contains("vectors.sealed_vector"), start.stderr)
    }
}
