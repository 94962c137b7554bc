import DomicileModel
import DomicileTestSupport
import Foundation
import XCTest

final class RestartTests: NodeTestCase {
    /// Kill -9 during a receipt load; after restart every acknowledged
    /// receipt is there and every chain verifies.
    func test_sigkillDuringReceiptIngestion_losesNoAcknowledgedReceipt() async throws {
        try startNode(regions: ["eu"])
        var registered: [String] = []
        for index in 0..<12 { registered.append(try await register(email: "restart-\(index)@example.com")) }

        let pids = registered
        let acknowledged = Locked<[String: [(receipt: String, seq: Int)]]>([:])
        let node = self.node!
        let ingest = token("ingest")
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for (index, pid) in pids.enumerated() {
                    group.addTask {
                        var round = 0
                        while !Task.isCancelled {
                            let action = round % 2 == 0 ? "grant" : "revoke"
                            let body = #"{"action":"\#(action)","purposes":["product_recs"],"source":"load:\#(index)","collected_at":"2026-01-01T00:00:00Z"}"#
                            guard let response = try? await node.call("POST", "/v1/subjects/\(pid)/consents", token: ingest, json: body) else { return }
                            guard response.status == 201, let id = response.json["receipt_id"] as? String,
                                  let seq = response.json["seq"] as? Int else { return }
                            acknowledged.withLock { $0[pid, default: []].append((id, seq)) }
                            round += 1
                        }
                    }
                }
                // Two batch writers as well.
                for writer in 0..<2 {
                    group.addTask {
                        while !Task.isCancelled {
                            let chosen = [pids[writer], pids[writer + 2]]
                            let entries = chosen.map { #"{"pid":"\#($0)","action":"grant","purposes":["analytics"],"source":"batch","collected_at":"2026-01-01T00:00:00Z"}"# }
                            guard let response = try? await node.call("POST", "/v1/consents/batch", token: ingest,
                                                                       json: #"{"receipts":[\#(entries.joined(separator: ","))]}"#),
                                  response.status == 201, let receipts = response.json["receipts"] as? [[String: Any]] else { return }
                            acknowledged.withLock { map in
                                for receipt in receipts {
                                    map[receipt["pid"] as! String, default: []].append((receipt["receipt_id"] as! String, receipt["seq"] as! Int))
                                }
                            }
                        }
                    }
                }
            }
        }
        try await Task.sleep(nanoseconds: 1_500_000_000)
        node.kill()
        load.cancel()
        await load.value
        let before = acknowledged.value
        let total = before.values.map(\.count).reduce(0, +)
        XCTAssertGreaterThan(total, 50, "the load ran long enough to matter")

        self.node = try federation.start("eu-1")
        for pid in pids {
            let history = try await self.node.call("GET", "/v1/subjects/\(pid)/consents", token: token("privacy_officer"))
            XCTAssertEqual(history.status, 200)
            XCTAssertEqual(history.json["chain_valid"] as? Bool, true, pid)
            let stored = Dictionary(uniqueKeysWithValues: ((history.json["receipts"] as? [[String: Any]]) ?? []).map {
                ($0["receipt_id"] as! String, $0["seq"] as! Int)
            })
            for (receipt, seq) in before[pid] ?? [] {
                XCTAssertEqual(stored[receipt], seq, "acknowledged receipt \(receipt) of \(pid) lost or moved")
            }
        }
        let audit = try await self.node.call("GET", "/v1/audit/verify", token: token("privacy_officer"))
        XCTAssertEqual(audit.json["valid"] as? Bool, true)
    }
}
