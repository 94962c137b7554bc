import DomicileNet
import DomicileTestSupport
import DomicileVectors
import Foundation
import XCTest

/// Real processes, real UDP and TCP on loopback: membership as the nodes see it.
final class ClusterTests: XCTestCase {
    var nodes: [String: NodeProcess] = [:]

    override func tearDown() {
        nodes.values.forEach { $0.kill() }
        super.tearDown()
    }

    /// How `observer` sees `member` in `pool` (nil when it does not list it).
    func status(_ member: String, seenBy observer: String, pool: String = "federation",
                federation: FederationFixture) async -> (status: String, bootID: String)? {
        guard let node = nodes[observer],
              let view = try? await node.call("GET", "/v1/cluster", token: federation.token("serve")),
              let pools = view.json["pools"] as? [String: Any], let members = pools[pool] as? [[String: Any]],
              let entry = members.first(where: { $0["name"] as? String == member }) else { return nil }
        return (entry["status"] as? String ?? "", entry["boot_id"] as? String ?? "")
    }

    func waitUntil(seconds: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return true }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        return await condition()
    }

    /// The boot id a node logs when it starts is the one it gossips and reports.
    func test_listeningLogLine_carriesTheBootIdGossipAndTheClusterViewUse() async throws {
        let federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 2, gossip: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        let seen = await waitUntil(seconds: 20) { await status("eu-1", seenBy: "eu-2", federation: federation)?.status == "alive" }
        XCTAssertTrue(seen, "eu-2 never saw eu-1")
        let listening = try XCTUnwrap(nodes["eu-1"]!.logLines.first { $0.contains(#""event":"listening""#) })
        let fields = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(listening.utf8)) as? [String: Any])
        let logged = try XCTUnwrap(fields["boot_id"] as? String)
        // The distance kernels' level, chosen at startup for this CPU: the one this process chose too.
        XCTAssertEqual(fields["vector_kernels"] as? String, VectorKernels.Level.best.description)
        let view = try await nodes["eu-1"]!.call("GET", "/v1/cluster", token: federation.token("serve"))
        XCTAssertEqual((view.json["node"] as? [String: Any])?["boot_id"] as? String, logged)
        let gossiped = await status("eu-1", seenBy: "eu-2", federation: federation)
        XCTAssertEqual(gossiped?.bootID, logged)
    }

    func test_sixNodeCluster_detectsASIGKILL_andTheRestartRejoins() async throws {
        let federation = try FederationFixture(regions: ["eu", "us", "br"], nodesPerRegion: 2, gossip: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        let everyone = federation.nodeNames
        let converged = await waitUntil(seconds: 20) {
            for observer in everyone {
                for member in everyone where await status(member, seenBy: observer, federation: federation)?.status != "alive" {
                    return false
                }
            }
            return true
        }
        XCTAssertTrue(converged, "six nodes see six alive members")
        let regionView = await status("eu-2", seenBy: "eu-1", pool: "region", federation: federation)
        XCTAssertEqual(regionView?.status, "alive")
        let foreign = await status("us-1", seenBy: "eu-1", pool: "region", federation: federation)
        XCTAssertNil(foreign, "the region pool holds the region's nodes only")
        let oldBoot = await status("us-2", seenBy: "eu-1", federation: federation)?.bootID

        nodes["us-2"]!.kill()
        let killedAt = Date()
        let others = everyone.filter { $0 != "us-2" }
        let detected = await waitUntil(seconds: 30) {
            for observer in others where await status("us-2", seenBy: observer, federation: federation)?.status != "dead" { return false }
            return true
        }
        XCTAssertTrue(detected, "every other node declares the killed node dead")
        print("SIGKILL detected by all five others in \(String(format: "%.1f", Date().timeIntervalSince(killedAt))) s")

        // The 421 answer lists only live nodes of the home region.
        let misdirected = try await nodes["eu-1"]!.call("GET", "/v1/subjects/psn:v1:us:" + String(repeating: "A", count: 43),
                                                        token: federation.token("serve"))
        XCTAssertEqual((misdirected.json["nodes"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["us-1"])

        nodes["us-2"] = try federation.start("us-2")
        let rejoined = await waitUntil(seconds: 30) {
            for observer in others {
                guard let seen = await status("us-2", seenBy: observer, federation: federation),
                      seen.status == "alive", seen.bootID != oldBoot else { return false }
            }
            return true
        }
        XCTAssertTrue(rejoined, "the restarted node (new boot id) is alive in every view")
    }

    func test_gracefulStop_isRecordedAsLeft_andBadPacketsAreDropped() async throws {
        let federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 2, gossip: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        let joined = await waitUntil(seconds: 15) { await status("eu-2", seenBy: "eu-1", federation: federation)?.status == "alive" }
        XCTAssertTrue(joined)

        // Packets under another key, or not packets at all, are dropped and counted.
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: federation.configPath("eu-1")))) as! [String: Any]
        let gossipAddress = try SocketAddress(parsing: (config["gossip"] as! [String: Any])["address"] as! String)
        let probe = try DatagramSocket(bind: try SocketAddress(parsing: "127.0.0.1:0"), receiveTimeoutMilliseconds: 100)
        probe.send([1, 1] + (0..<60).map { UInt8($0) }, to: gossipAddress)
        probe.send([7, 1] + (0..<60).map { UInt8($0) }, to: gossipAddress)
        probe.send([1, 2, 3], to: gossipAddress)
        let dropped = await waitUntil(seconds: 5) {
            let metrics = (try? await nodes["eu-1"]!.call("GET", "/metrics", token: nil).text) ?? ""
            return metrics.contains(#"domicile_gossip_packets_dropped_total{reason="undecryptable"} 1"#)
                && metrics.contains(#"domicile_gossip_packets_dropped_total{reason="version"} 1"#)
                && metrics.contains(#"domicile_gossip_packets_dropped_total{reason="short"} 1"#)
        }
        XCTAssertTrue(dropped)
        await XCTAssertEqualAsync(try await nodes["eu-1"]!.call("GET", "/healthz", token: nil).status, 200)

        XCTAssertEqual(nodes["eu-2"]!.stop(), 0)
        let left = await waitUntil(seconds: 5) { await status("eu-2", seenBy: "eu-1", federation: federation)?.status == "left" }
        XCTAssertTrue(left)
    }

    /// Push-pull runs over TCP on the gossip port, served by the node's
    /// event loop: states are exchanged, and a frame that is not a sealed
    /// state is dropped, counted and its connection closed unanswered.
    func test_pushPull_exchangesStatesOverTCP_andDropsABadFrame() async throws {
        let federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 2, gossip: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        let joined = await waitUntil(seconds: 15) { await status("eu-1", seenBy: "eu-2", federation: federation)?.status == "alive" }
        XCTAssertTrue(joined)
        func metrics(_ node: String) async -> String { (try? await nodes[node]!.call("GET", "/metrics", token: nil).text) ?? "" }
        func pushPulls(_ node: String) async -> Int {
            let line = await metrics(node).split(separator: "\n").first { $0.hasPrefix("domicile_gossip_push_pulls_total ") }
            return line.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        }
        let exchanged = await waitUntil(seconds: 10) { await pushPulls("eu-1") + pushPulls("eu-2") >= 1 }
        XCTAssertTrue(exchanged, "a push-pull over TCP completed")

        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: federation.configPath("eu-1")))) as! [String: Any]
        let gossipAddress = try SocketAddress(parsing: (config["gossip"] as! [String: Any])["address"] as! String)
        let connection = try RawConnection(port: gossipAddress.port)
        XCTAssertTrue(connection.send([0, 0, 0, 3, 1, 2, 3]))
        XCTAssertTrue(connection.isClosedByPeer(), "a frame that is not a sealed state gets no answer")
        let dropped = await waitUntil(seconds: 5) {
            await metrics("eu-1").contains(#"domicile_gossip_packets_dropped_total{reason="push-pull"} 1"#)
        }
        XCTAssertTrue(dropped)
    }
}

/// Two regions in separate network namespaces, partitioned and healed.
final class NetworkNamespaceTests: XCTestCase {
    func test_partitionBetweenRegions_isDetected_andHeals() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../cluster/netns").standardized.path
        let directory = TemporaryDirectory("domicile-netns")
        var environment = ProcessInfo.processInfo.environment
        environment["DOMICILE_BINARY"] = Binary.path
        environment["DOMICILE_NETNS_DIR"] = directory.path
        func netns(_ arguments: [String]) throws -> (status: Int32, output: String) {
            let log = directory.file("netns.log")
            let process = try RunningProcess(script, arguments, environment: environment, stderrPath: log)
            let status = process.wait()
            return (status, process.output.joined(separator: "\n"))
        }
        let up = try netns(["up", "--regions", "eu,us", "--nodes-per-region", "1"])
        if up.status == 77 { throw XCTSkip("network namespaces not permitted here: \(up.output)") }
        defer { _ = try? netns(["down"]) }
        XCTAssertEqual(up.status, 0, up.output)

        func view(_ node: String, of member: String) throws -> String? {
            let result = try netns(["curl", node, "/v1/cluster"])
            guard let data = result.output.data(using: .utf8),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let members = (json["pools"] as? [String: Any])?["federation"] as? [[String: Any]] else { return nil }
            return members.first { $0["name"] as? String == member }?["status"] as? String
        }
        func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return true }
                Thread.sleep(forTimeInterval: 0.5)
            }
            return try condition()
        }
        XCTAssertTrue(try waitFor(20) { try view("eu-1", of: "us-1") == "alive" && view("us-1", of: "eu-1") == "alive" })
        XCTAssertEqual(try netns(["partition", "eu", "us"]).status, 0)
        XCTAssertTrue(try waitFor(30) { try view("eu-1", of: "us-1") == "dead" && view("us-1", of: "eu-1") == "dead" },
                      "each side declares the other dead")
        XCTAssertEqual(try netns(["heal"]).status, 0)
        XCTAssertTrue(try waitFor(30) { try view("eu-1", of: "us-1") == "alive" && view("us-1", of: "eu-1") == "alive" },
                      "after the heal, one membership again")
    }
}
