@testable import DomicileNode
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileTestSupport
import Foundation
import XCTest

/// The export path the federation will use: a noised embedding leaves only
/// under consent, from a collection with export settings, while the
/// subject's embedding budget holds — charged before it is handed back.
final class EmbeddingExportTests: XCTestCase {
    func test_exports_areNoisedAndCharged_andRefusedBeyondTheSubjectsBudget() async throws {
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
            let client = HTTPClient()
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
            let shared = try Name("shared", what: "collection"), also = try Name("also", what: "collection"), secret = try Name("private", what: "collection")
            func export(_ collection: Name) async throws -> EmbeddingNoise.Noised {
                try await services.store.write { try EmbeddingExports.export(collection, pid: pid, services: services, now: services.clock.now(), in: $0) }
            }

            // Two exports at ε 4 fit a budget of 10; the third does not, and charges nothing.
            let first = try await export(shared)
            XCTAssertEqual(first.vector.count, 4)
            XCTAssertNotEqual(first.vector, [0.6, 0.8, 0, 0], "the exported vector carries noise")
            XCTAssertGreaterThan(first.sigma, 0.5, "σ for ε 4 and sensitivity 2 is above 0.5")
            _ = try await export(shared)
            do {
                _ = try await export(shared)
                XCTFail("a third export fitted a budget of 10 at ε 4 each")
            } catch let error as DomainError {
                XCTAssertEqual(error.code, "budget_exhausted")
            }
            // The budget is the subject's, over every collection: another collection adds none.
            do {
                _ = try await export(also)
                XCTFail("another collection exported beyond the subject's budget")
            } catch let error as DomainError {
                XCTAssertEqual(error.code, "budget_exhausted")
            }
            let charges = try services.store.read { try $0.fetchOne("SELECT count(*) FROM embedding_charges WHERE pid = ?", [pid.rawValue]) { $0.int64(0) } }
            XCTAssertEqual(charges, 2, "the refused export was charged")

            // Without export settings, vectors never leave.
            do {
                _ = try await export(secret)
                XCTFail("a collection without export settings exported")
            } catch let error as DomainError {
                XCTAssertEqual(error.code, "export_not_allowed")
            }
            // Without consent, nothing leaves either (the revoke purged the vector too).
            _ = try await call("POST", "/v1/subjects/\(pid)/consents", "ingest",
                               #"{"action":"revoke","purposes":["product_recs"],"source":"test","collected_at":"2026-01-01T00:00:00Z"}"#)
            do {
                _ = try await export(shared)
                XCTFail("an export without consent")
            } catch let error as DomainError {
                XCTAssertEqual(error.code, "unknown_vector")
            }
        }
    }
}
