import DomicileTestSupport
import Foundation
import XCTest

final class ClusterInitTests: XCTestCase {
    private func config(_ directory: TemporaryDirectory, _ node: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory.file("\(node)/config.json")))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Port 0 cannot be written as another node's seed: refused, not a
    /// federation of lone nodes.
    func test_clusterInit_refusesGossipPortZero_withAClearMessage() throws {
        let directory = TemporaryDirectory()
        let result = try Binary.run(["cluster", "init", "--dir", directory.file("fed"), "--regions", "eu,us",
                                     "--nodes-per-region", "1", "--gossip-port", "0"])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("--gossip-port 0"), result.stderr)
        XCTAssertTrue(result.stderr.contains("--no-gossip"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("fed/eu-1/config.json")))
    }

    func test_clusterInit_writesEveryOtherNodeAsASeed_orNoGossipAtAll() throws {
        let directory = TemporaryDirectory()
        let result = try Binary.run(["cluster", "init", "--dir", directory.path, "--regions", "eu,us",
                                     "--nodes-per-region", "2", "--http-port", "0", "--gossip-port", "27300"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let nodes = ["eu-1", "eu-2", "us-1", "us-2"]
        let addresses = ["127.0.0.1:27300", "127.0.0.1:27301", "127.0.0.1:27302", "127.0.0.1:27303"]
        for (node, address) in zip(nodes, addresses) {
            let gossip = try XCTUnwrap(try config(directory, node)["gossip"] as? [String: Any])
            XCTAssertEqual(gossip["address"] as? String, address)
            XCTAssertEqual(Set(gossip["seeds"] as? [String] ?? []), Set(addresses).subtracting([address]), node)
        }

        let alone = TemporaryDirectory()
        let noGossip = try Binary.run(["cluster", "init", "--dir", alone.path, "--regions", "eu", "--nodes-per-region", "1",
                                       "--http-port", "0", "--no-gossip"])
        XCTAssertEqual(noGossip.status, 0, noGossip.stderr)
        XCTAssertNil(try config(alone, "eu-1")["gossip"])
    }
}
