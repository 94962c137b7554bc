@testable import DomicileNode
import DomicileFederation
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileTestSupport
import Foundation
import XCTest

/// The exporter the federation publishes from: a noised copy per vector
/// version, only under consent, from a collection with export settings,
/// while the subject's embedding budget holds — charged in the transaction
/// that records it; a revoke retracts it in its own.
final class EmbeddingExportTests: XCTestCase {
    func test_exports_areNoisedChargedOncePerVersion_refusedBeyondTheBudget_andRetractedOnRevoke() async throws {
        let federation = try FederationFixture(regions: ["eu"]) { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["embedding_epsilon_per_period"] = 10.0
            config["limits"] = limits
        }
        var configuration = try NodeConfiguration.load(path: federation.configPath("eu-1"))
        configuration.gossip.address = nil
        configuration.accessLog = false
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let node = try await Node.start(configuration, logger: Logger(clock: SystemClock(), descriptor: devNull))
        try await shuttingDown(node) {
            let client = federation.client
            func call(_ method: String, _ path: String, _ role: String, _ json: String) async throws -> [String: Any] {
                var headers = HTTPHeaders()
                headers.set("Authorization", "Bearer \(federation.token(role))")
                headers.set("Content-Type", "application/json")
                let response = try await client.send(method, path, to: node.httpAddress, headers: headers, body: Array(json.utf8))
                XCTAssertLessThan(response.status, 300, String(decoding: response.body, as: UTF8.self))
                return (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            }
            _ = try await call("PUT", "/v1/collections/shared", "admin",
                               #"{"dimension":4,"metric":"l2","purpose":"product_recs","index":{"kind":"flat"},"export":{"epsilon":4,"delta":1e-6,"clip_norm":1}}"#)
            _ = try await call("PUT", "/v1/collections/also", "admin",
                               #"{"dimension":4,"metric":"l2","purpose":"product_recs","index":{"kind":"flat"},"export":{"epsilon":4,"delta":1e-6,"clip_norm":1}}"#)
            _ = try await call("PUT", "/v1/collections/private", "admin", #"{"dimension":4,"metric":"l2","purpose":"product_recs","index":{"kind":"flat"}}"#)
            let registered = try await call("POST", "/v1/subjects", "ingest", #"{"identifier":{"kind":"customer_id","value":"exported"},"country":"DE"}"#)
            let pid = try PID(parsing: try XCTUnwrap(registered["pid"] as? String))
            _ = try await call("POST", "/v1/subjects/\(pid)/consents", "ingest",
                               #"{"action":"grant","purposes":["product_recs"],"source":"test","collected_at":"2026-01-01T00:00:00Z"}"#)
            for name in ["shared", "also", "private"] {
                _ = try await call("PUT", "/v1/collections/\(name)/vectors/\(pid)", "ingest", #"{"vector":[3,4,0,0]}"#)
            }
            let services = node.services
            let shared = try Name("shared", what: "collection"), also = try Name("also", what: "collection")
            func pending() throws -> [NoisedEmbedding] {
                try services.store.read { try EmbeddingExportRecords.unpublished(of: services.region, limit: 100, keys: services.keys, in: $0) }
            }
            func exportPending() async throws -> Int { try await EmbeddingExports.exportPending(services: services).exported }
            func charges() throws -> Int64? {
                try services.store.read { try $0.fetchOne("SELECT count(*) FROM embedding_charges WHERE pid = ?", [pid.rawValue]) { $0.int64(0) } }
            }

            // One copy per collection with export settings, each charged ε 4 (8 of 10 spent).
            let pass1 = try await exportPending()
            XCTAssertEqual(pass1, 2)
            let exported = try pending()
            XCTAssertEqual(Set(exported.map(\.collection)), [shared, also], "a collection without export settings keeps its vectors")
            XCTAssertEqual(exported.map(\.generation), [1, 1])
            let copy = try XCTUnwrap(exported.first?.vector)
            XCTAssertEqual(copy.count, 4)
            XCTAssertNotEqual(copy, [0.6, 0.8, 0, 0], "the exported vector carries noise")
            guard case .vector(_, let sigma, let epsilon, _)? = exported.first?.content else { return XCTFail("not a vector") }
            XCTAssertGreaterThan(sigma, 0.5, "σ for ε 4 and sensitivity 2 is above 0.5")
            XCTAssertEqual(epsilon, 4)
            XCTAssertEqual(try charges(), 2)
            XCTAssertEqual(services.vectors.collection(shared)?.exports.count, 1, "the region answers fresh searches from its copy")

            // Once per vector version: another pass exports nothing and charges nothing.
            let pass2 = try await exportPending()
            XCTAssertEqual(pass2, 0)
            XCTAssertEqual(try charges(), 2)

            // A new version would need ε 4 more of a budget with 2 left: refused, counted, and not retried this period.
            _ = try await call("PUT", "/v1/collections/shared/vectors/\(pid)", "ingest", #"{"vector":[0,0,3,4]}"#)
            let pass3 = try await exportPending()
            XCTAssertEqual(pass3, 0)
            let pass4 = try await exportPending()
            XCTAssertEqual(pass4, 0)
            XCTAssertEqual(try charges(), 2, "a refused export charges nothing")
            let counts = try services.store.read { try EmbeddingExportRecords.counts(shared, in: $0) }
            XCTAssertEqual(counts.overBudget, 1)
            XCTAssertEqual(counts.exported, 1, "the copy released under budget stays")

            // The ledger shows every export: in total, per collection, and the subject's own charges.
            let budget = try await call("GET", "/v1/privacy-budget?pid=\(pid)", "privacy_officer", "")
            let ledger = try XCTUnwrap(budget["embeddings"] as? [String: Any])
            XCTAssertEqual(ledger["exports"] as? Int, 2)
            XCTAssertEqual(ledger["subjects"] as? Int, 1)
            XCTAssertEqual(ledger["refused_over_budget"] as? Int, 1)
            XCTAssertEqual((ledger["largest_subject_spend"] as? [String: Any])?["epsilon"] as? Double, 8)
            XCTAssertEqual((ledger["collections"] as? [[String: Any]])?.compactMap { $0["collection"] as? String }, ["also", "shared"])
            let subject = try XCTUnwrap(ledger["subject"] as? [String: Any])
            XCTAssertEqual((subject["charges"] as? [[String: Any]])?.count, 2)
            XCTAssertEqual((subject["remaining"] as? [String: Any])?["epsilon"] as? Double, 2)

            // The federation publishes; then a revoke retracts both copies in its own transaction.
            try await services.store.write { try EmbeddingExportRecords.markPublished(exported, in: $0) }
            XCTAssertTrue(try pending().isEmpty)
            _ = try await call("POST", "/v1/subjects/\(pid)/consents", "ingest",
                               #"{"action":"revoke","purposes":["product_recs"],"source":"test","collected_at":"2026-01-01T00:00:00Z"}"#)
            let retracted = try pending()
            XCTAssertEqual(retracted.map(\.generation), [2, 2])
            XCTAssertTrue(retracted.allSatisfy { $0.content == .retracted })
            XCTAssertEqual(services.vectors.collection(shared)?.exports.count, 0)
            let pass5 = try await exportPending()
            XCTAssertEqual(pass5, 0, "nothing uncovered is exported")
        }
    }
}
