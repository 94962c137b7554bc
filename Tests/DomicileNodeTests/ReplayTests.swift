@testable import DomicileNode
import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// A node started with a manual clock, a seeded id generator and a seeded
/// random source mints the same ids and draws the same noise for the same
/// calls: the first step towards replaying a run.
final class ReplayTests: XCTestCase {
    func test_twoNodes_withTheSameSeededProviders_mintTheSameIDs_andDrawTheSameNoise() async throws {
        let first = try await replay(seed: 11)
        let second = try await replay(seed: 11)
        XCTAssertEqual(first, second)
        XCTAssertEqual(first.map { String($0.prefix(3)) }, ["rc_", "rl_", "va=", "rc_", "rc_", "er_"])
        XCTAssertEqual(Set(first).count, first.count)
        let otherSeed = try await replay(seed: 12)
        XCTAssertNotEqual(otherSeed, first, "the ids and the noise come from the seeds")
    }

    /// Starts a fresh node on its own database, registers a subject, grants,
    /// releases a noisy count, revokes, signals GPC and erases the subject;
    /// returns the ids the node minted and the released value.
    private func replay(seed: UInt64) async throws -> [String] {
        let federation = try FederationFixture(regions: ["eu"])
        var configuration = try NodeConfiguration.load(path: federation.configPath("eu-1"))
        configuration.gossip.address = nil
        configuration.accessLog = false
        let clock = ManualClock(Timestamp(seconds: 1_800_000_000))
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let node = try await Node.start(configuration, clock: clock, ids: SeededIDGenerator(seed: seed),
                                        random: SeededRandomSource(seed: seed), logger: Logger(clock: clock, descriptor: devNull))
        let client = federation.client
        func call(_ method: String, _ path: String, _ role: String, _ json: String) async throws -> [String: Any] {
            var headers = HTTPHeaders()
            headers.set("Authorization", "Bearer \(federation.token(role))")
            headers.set("Content-Type", "application/json")
            let response = try await client.send(method, path, to: node.httpAddress, headers: headers, body: Array(json.utf8))
            XCTAssertTrue((200..<300).contains(response.status), "\(method) \(path): \(response.status)")
            return (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        }
        var ids: [String] = []
        do {
            let subject = try await call("POST", "/v1/subjects", "ingest",
                                         #"{"identifier":{"kind":"customer_id","value":"replay-1"},"region":"eu"}"#)
            let pid = try XCTUnwrap(subject["pid"] as? String)
            let at = clock.now().rfc3339
            for body in [#"{"action":"grant","purposes":["analytics"],"source":"replay","collected_at":"\#(at)"}"#,
                         #"{"action":"revoke","purposes":["analytics"],"source":"replay","collected_at":"\#(at)"}"#,
                         #"{"action":"gpc","source":"replay","collected_at":"\#(at)"}"#] {
                let receipt = try await call("POST", "/v1/subjects/\(pid)/consents", "ingest", body)
                ids.append(try XCTUnwrap(receipt["receipt_id"] as? String))
                if ids.count == 1 {
                    // ε = 0.1: the count's noise has a scale of 10, so another seed draws another value.
                    let release = try await call("POST", "/v1/aggregates", "analyst", #"{"name":"subjects","kind":"count","epsilon":0.1}"#)
                    ids.append(try XCTUnwrap(release["release_id"] as? String))
                    ids.append("va=\(try XCTUnwrap(release["value"] as? Double))")
                }
            }
            let erasure = try await call("POST", "/v1/erasures", "privacy_officer", #"{"pid":"\#(pid)"}"#)
            ids.append(try XCTUnwrap(erasure["erasure_id"] as? String))
        } catch {
            await node.shutdown(graceMilliseconds: 0)
            throw error
        }
        await node.shutdown(graceMilliseconds: 0)
        return ids
    }
}
