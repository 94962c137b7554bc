import DomicileClient
import DomicileTestSupport
import Foundation
import XCTest

/// Helpers for the client's end-to-end tests: real `domicile serve`
/// processes from a `cluster init` directory, and clients of them per role.
class ClientTestCase: NodeProcessesTestCase {
    /// One node, `eu-1`, of a policy with the regions `eu` and `us`, without gossip, serving TLS
    /// (`cluster init --tls`): every end-to-end flow of the client runs over TLS.
    func startNode(configure: @escaping (_ node: String, _ config: inout [String: Any]) -> Void = { _, _ in }) throws {
        federation = try FederationFixture(regions: ["eu", "us"], tls: true, configure: configure)
        nodes["eu-1"] = try federation.start("eu-1")
    }

    /// A client of `seeds` (node names; default every started node) calling as `role`,
    /// trusting the fixture's CA when its nodes serve TLS.
    func client(_ role: String?, seeds: [String]? = nil,
                configure: (inout DomicileClient.Configuration) -> Void = { _ in }) throws -> DomicileClient {
        let addresses = (seeds ?? nodes.keys.sorted()).map { nodes[$0]!.address.description }
        var configuration = DomicileClient.Configuration(seeds: addresses, token: role.map { federation.token($0) }, caFile: federation.caFile)
        configure(&configuration)
        return try DomicileClient(configuration: configuration)
    }

    /// Runs `body`, which must throw a `DomicileProblem`, and returns it.
    func problem(_ body: () async throws -> Void, file: StaticString = #filePath, line: UInt = #line) async -> DomicileProblem? {
        do {
            try await body()
            XCTFail("expected a problem", file: file, line: line)
        } catch let problem as DomicileProblem {
            return problem
        } catch {
            XCTFail("expected a problem, got \(error)", file: file, line: line)
        }
        return nil
    }

    static let collectedAt = "2026-01-01T00:00:00Z"
}
