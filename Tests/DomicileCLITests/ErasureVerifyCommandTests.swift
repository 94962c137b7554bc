import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileTestSupport
import Foundation
import XCTest

/// `domicile erasure verify FILE --trust KEYS`, the built binary, on a
/// certificate signed here: good → 0, tampered or incomplete → 1, no trusted
/// keys → 2.
final class ErasureVerifyCommandTests: XCTestCase {
    let directory = TemporaryDirectory()
    let eu = try! RegionID("eu")
    let us = try! RegionID("us")
    let keys = ["eu-1": key(1), "us-1": key(2)]
    let requestedAt = Timestamp(milliseconds: 1_790_000_000_000)

    static func key(_ byte: UInt8) -> Ed25519PrivateKey { try! Ed25519PrivateKey(seed: [UInt8](repeating: byte, count: 32)) }

    func certificate(ackingNodes: [String] = ["eu-1", "us-1"]) -> ErasureCertificate {
        let request = SignedErasureRequest.signed(
            erasureID: "er_cli", requestedAt: requestedAt, dueAt: requestedAt.adding(seconds: 30 * 86_400), jurisdiction: "gdpr",
            originRegion: eu, originNode: "eu-1", policyVersion: 1, linkHash: SHA256.hash("a link"),
            expectedNodes: [eu: ["eu-1"], us: ["us-1"]], key: keys["eu-1"]!)
        let acks = ackingNodes.map { node in
            ErasureAck.signed(for: request, region: try! RegionID(String(node.prefix(2))), node: node, erasedAt: requestedAt.adding(seconds: 1),
                              counts: ["subjects": 1, "features": 4], walTruncated: true, policyVersion: 1, key: keys[node]!)
        }
        let completedAt = requestedAt.adding(seconds: 2)
        return ErasureCertificate(request: request, completedAt: completedAt,
                                  completionSignature: ErasureCompletion.signature(request: request, completedAt: completedAt, acks: acks,
                                                                                   key: keys["eu-1"]!),
                                  acks: acks)
    }

    /// The files `domicile keys export-public` writes, one per node.
    func trustFiles() throws -> [String] {
        try keys.keys.sorted().map { node in
            let file = directory.file("\(node).keys.json")
            let document: [String: Any] = [
                "node": node, "region": String(node.prefix(2)),
                "signing_keys": [["version": 1, "public_key": Base64.encode(keys[node]!.publicKey.rawRepresentation)]],
            ]
            try JSONSerialization.data(withJSONObject: document).write(to: URL(fileURLWithPath: file))
            return file
        }
    }

    /// Writes `text` as the answer of GET /v1/erasures/{id} (the certificate nested) and verifies it.
    func verify(_ text: String, trust: [String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let file = directory.file("certificate.json")
        try Data(#"{"erasure_id":"er_cli","status":"complete","certificate":\#(text)}"#.utf8).write(to: URL(fileURLWithPath: file))
        return try Binary.run(["erasure", "verify", file] + (try trust ?? trustFiles()).flatMap { ["--trust", $0] })
    }

    func encoded(_ certificate: ErasureCertificate) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(certificate), as: UTF8.self)
    }

    func test_goodCertificate_exits0_tamperedOrIncomplete_exits1() throws {
        let good = try encoded(certificate())
        let accepted = try verify(good)
        XCTAssertEqual(accepted.status, 0, accepted.stderr)
        XCTAssertTrue(accepted.stdout.contains("certificate er_cli valid"), accepted.stdout)
        XCTAssertTrue(accepted.stdout.contains("(scope node)"), accepted.stdout)

        let backdated = good.replacingOccurrences(of: requestedAt.rfc3339, with: requestedAt.adding(seconds: -86_400).rfc3339)
        XCTAssertNotEqual(backdated, good)
        let refused = try verify(backdated)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("INVALID"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("the signature does not match the request"), refused.stderr)

        let walClaim = good.replacingOccurrences(of: #""wal_truncated":true"#, with: #""wal_truncated":false"#)
        XCTAssertNotEqual(walClaim, good)
        XCTAssertEqual(try verify(walClaim).status, 1)

        let incomplete = try verify(try encoded(certificate(ackingNodes: ["eu-1"])))
        XCTAssertEqual(incomplete.status, 1)
        XCTAssertTrue(incomplete.stderr.contains("region us: no ack from expected node us-1"), incomplete.stderr)

        let eu1Only = try verify(good, trust: [try trustFiles()[0]])
        XCTAssertEqual(eu1Only.status, 1, "us-1's key is not trusted")
        XCTAssertTrue(eu1Only.stderr.contains("the ack's key is not a trusted key of node us-1"), eu1Only.stderr)
    }

    func test_withoutTrustedKeys_theCommandLineIsWrong() throws {
        let refused = try verify(try encoded(certificate()), trust: [])
        XCTAssertEqual(refused.status, 2, "a certificate checked against no trusted key proves nothing")
        XCTAssertTrue(refused.stderr.contains("--trust"), refused.stderr)
    }
}
