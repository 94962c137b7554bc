import DomicileCrypto
import DomicileStorage
import DomicileNet
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

    /// By default (or `--tls`): a CA and per-node certificates naming each
    /// node's host, keys readable by the owner only, and configs that use
    /// them; with `--plaintext`, configs say plaintext explicitly.
    func test_clusterInit_writesACAAndNodeCertificatesByDefault_andPlaintextOnlyWhenAsked() throws {
        let directory = TemporaryDirectory()
        let result = try Binary.run(["cluster", "init", "--dir", directory.path, "--regions", "eu,us", "--nodes-per-region", "1",
                                     "--http-port", "0", "--no-gossip", "--no-region-log", "--hosts", "us=10.0.0.12"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for (node, host) in [("eu-1", "127.0.0.1"), ("us-1", "10.0.0.12")] {
            let tls = try XCTUnwrap(try config(directory, node)["tls"] as? [String: String])
            XCTAssertEqual(tls, ["cert_file": "\(node).pem", "key_file": "\(node)-key.pem", "ca_file": "../ca.pem", "min_version": "1.3"])
            let keyMode = try FileManager.default.attributesOfItem(atPath: directory.file("\(node)/\(node)-key.pem"))[.posixPermissions] as? Int
            XCTAssertEqual(keyMode, 0o600)
            if let openssl = ChildProcess.find("openssl") {
                let verified = try ChildProcess.run(openssl, ["verify", "-CAfile", directory.file("ca.pem"), "-verify_ip", host,
                                                              directory.file("\(node)/\(node).pem")], captureStandardError: true)
                XCTAssertEqual(verified.status, 0, verified.output)
                let wrongHost = try ChildProcess.run(openssl, ["verify", "-CAfile", directory.file("ca.pem"), "-verify_ip", "10.9.9.9",
                                                               directory.file("\(node)/\(node).pem")], captureStandardError: true)
                XCTAssertNotEqual(wrongHost.status, 0, wrongHost.output)
            }
        }
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: directory.file("ca-key.pem"))[.posixPermissions] as? Int, 0o600)

        let plain = TemporaryDirectory()
        XCTAssertEqual(try Binary.run(["cluster", "init", "--dir", plain.path, "--regions", "eu", "--nodes-per-region", "1",
                                       "--http-port", "0", "--no-gossip", "--no-region-log", "--plaintext"]).status, 0)
        XCTAssertEqual(try config(plain, "eu-1")["tls"] as? [String: Bool], ["plaintext": true])
        XCTAssertFalse(FileManager.default.fileExists(atPath: plain.file("ca.pem")))
    }

    func test_clusterInit_writesEveryOtherNodeAsASeed_orNoGossipAtAll() throws {
        let directory = TemporaryDirectory()
        let result = try Binary.run(["cluster", "init", "--dir", directory.path, "--regions", "eu,us",
                                     "--nodes-per-region", "2", "--http-port", "0", "--gossip-port", "27300", "--no-region-log"])
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

    /// The nodes of a region wrap subject keys in one replicated database, so
    /// they start from the same bucket keys (and ratchet them alike); another
    /// region's are its own, and each node's signing key stays its own.
    func test_clusterInit_givesTheNodesOfARegionTheSameBucketKeys_andOtherRegionsOthers() throws {
        let directory = TemporaryDirectory()
        let result = try Binary.run(["cluster", "init", "--dir", directory.path, "--regions", "eu,us",
                                     "--nodes-per-region", "3", "--http-port", "0", "--no-gossip"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let masterText = try String(contentsOfFile: directory.file("master.key"), encoding: .utf8)
        let master = try MasterKey(base64: masterText.trimmingCharacters(in: .whitespacesAndNewlines))
        func keyring(_ node: String) throws -> Keyring { try KeyringFile.load(path: directory.file("\(node)/\(node).keyring"), master: master) }
        func bucketMaterial(_ keyring: Keyring) -> [[UInt8]] { keyring.buckets.keys.map(\.material.bytesForSealing) }
        let (eu1, eu2, eu3, us1, us2) = (try keyring("eu-1"), try keyring("eu-2"), try keyring("eu-3"), try keyring("us-1"), try keyring("us-2"))
        XCTAssertEqual(eu1.buckets.count, SubjectKeyBuckets.defaultCount)
        XCTAssertEqual(bucketMaterial(eu2), bucketMaterial(eu1))
        XCTAssertEqual(bucketMaterial(eu3), bucketMaterial(eu1))
        XCTAssertEqual(bucketMaterial(us2), bucketMaterial(us1))
        XCTAssertEqual(us1.buckets.count, SubjectKeyBuckets.defaultCount)
        XCTAssertNotEqual(us1.buckets.current(0)?.material.bytesForSealing, eu1.buckets.current(0)?.material.bytesForSealing)
        XCTAssertTrue(zip(bucketMaterial(us1), bucketMaterial(eu1)).allSatisfy { $0 != $1 }, "no bucket key shared across regions")
        XCTAssertNotEqual(try eu2.primary(.nodeSigning).material.bytesForSealing, try eu1.primary(.nodeSigning).material.bytesForSealing)
    }
}
