import DomicileTestSupport
import Foundation
import XCTest

/// Helpers shared by the tests of a federation of `domicile serve`
/// processes: calls by node name, bounded waits, readiness.
class FederationTestCase: NodeProcessesTestCase {
    func call(_ node: String, _ method: String, _ path: String, role: String, json: String? = nil) async throws -> NodeProcess.Response {
        try await nodes[node]!.call(method, path, token: federation.token(role), json: json)
    }

    func waitUntilReady(_ names: [String], file: StaticString = #filePath, line: UInt = #line) async throws {
        let ready = try await eventually(seconds: 40) {
            for name in names where (try? await nodes[name]!.call("GET", "/readyz", token: nil))?.status != 200 { return false }
            return true
        }
        XCTAssertTrue(ready, "\(names) ready", file: file, line: line)
    }

    /// Every node ready, and seeing every node of the federation alive (so a request expects every region).
    func waitUntilFederated(file: StaticString = #filePath, line: UInt = #line) async throws {
        try await waitUntilReady(federation.nodeNames, file: file, line: line)
        let known = try await eventually(seconds: 30) {
            for name in federation.nodeNames {
                let view = try await call(name, "GET", "/v1/cluster", role: "admin").json
                let members = (view["pools"] as? [String: Any])?["federation"] as? [[String: Any]] ?? []
                if members.filter({ $0["status"] as? String == "alive" }).count < federation.nodeNames.count { return false }
            }
            return true
        }
        XCTAssertTrue(known, "the federation pool knows every node", file: file, line: line)
    }

    /// Three regions of three nodes, each node in its own network namespace
    /// (`NamespaceNetwork`), started and federated; skipped, saying `why`,
    /// where namespaces cannot be made. The caller tears the network down.
    func startFederationInNamespaces(skipping why: String) async throws -> NamespaceNetwork {
        // Plaintext: the namespaces rewrite each node's address, which its certificate (127.0.0.1) would not name.
        federation = try FederationFixture(regions: ["eu", "us", "br"], nodesPerRegion: 3, gossip: true, regionLog: true, tls: false)
        let network: NamespaceNetwork
        switch NamespaceNetwork.make(nodeCount: federation.nodeNames.count) {
        case .success(let made): network = made
        case .failure(let reason): throw XCTSkip("no network namespaces here (\(reason.description)): \(why)")
        }
        do {
            try network.rewriteAddresses(in: federation)
            for (offset, name) in federation.nodeNames.enumerated() {
                nodes[name] = try federation.start(name, launcher: network.launcher(offset + 1))
            }
            try await waitUntilFederated()
        } catch {
            network.tearDown()
            throw error
        }
        return network
    }
}
