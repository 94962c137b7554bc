import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import Foundation
import XCTest

/// A certificate of two expected regions (eu with two nodes, us with one),
/// requested on eu-1: every field tampered, an ack missing or spliced in from
/// another request must fail verification.
final class ErasureCertificateTests: XCTestCase {
    static func key(_ byte: UInt8) -> Ed25519PrivateKey { try! Ed25519PrivateKey(seed: [UInt8](repeating: byte, count: 32)) }

    let eu = try! RegionID("eu")
    let us = try! RegionID("us")
    let nodeKeys = ["eu-1": key(1), "eu-2": key(2), "us-1": key(3)]
    let requestedAt = Timestamp(milliseconds: 1_700_000_000_000)
    let completedAt = Timestamp(milliseconds: 1_700_000_060_000)

    var trusted: ErasureTrust { trust(["eu-1", "eu-2", "us-1"]) }

    func trust(_ nodes: [String], as keys: [String: Ed25519PrivateKey]? = nil) -> ErasureTrust {
        var trust = ErasureTrust()
        for node in nodes { trust.trust((keys ?? nodeKeys)[node]!.publicKey, region: try! RegionID(String(node.prefix(2))), node: node) }
        return trust
    }

    func request(id: String = "er_1", linkHash: [UInt8] = [UInt8](repeating: 0xAB, count: 32)) -> SignedErasureRequest {
        SignedErasureRequest.signed(erasureID: id, requestedAt: requestedAt, dueAt: requestedAt.adding(seconds: 30 * 86_400),
                                    jurisdiction: "gdpr", originRegion: eu, originNode: "eu-1", policyVersion: 3, linkHash: linkHash,
                                    expectedNodes: [eu: ["eu-2", "eu-1"], us: ["us-1"]], key: nodeKeys["eu-1"]!)
    }

    func ack(_ request: SignedErasureRequest, _ node: String, subjects: Int64 = 1) -> ErasureAck {
        ErasureAck.signed(for: request, region: try! RegionID(String(node.prefix(2))), node: node,
                          erasedAt: requestedAt.adding(seconds: 5), counts: ["subjects": subjects, "features": 4, "identities": 1],
                          walTruncated: true, policyVersion: 3, key: nodeKeys[node]!)
    }

    /// The origin signs the completion over whatever acks it is given.
    func certificate(_ request: SignedErasureRequest, acks: [ErasureAck]) -> ErasureCertificate {
        ErasureCertificate(request: request, completedAt: completedAt,
                           completionSignature: ErasureCompletion.signature(request: request, completedAt: completedAt, acks: acks,
                                                                            key: nodeKeys["eu-1"]!),
                           acks: acks)
    }

    func valid() -> ErasureCertificate {
        let request = request()
        return certificate(request, acks: ["eu-1", "eu-2", "us-1"].map { ack(request, $0) })
    }

    func json(_ certificate: ErasureCertificate) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(certificate)) as? [String: Any])
    }

    /// The problems of the certificate `edit` makes of the valid one's JSON;
    /// a document that no longer decodes counts as refused.
    func problems(_ edit: (inout [String: Any]) -> Void) throws -> [ErasureCertificate.Problem]? {
        var document = try json(valid())
        edit(&document)
        let data = try JSONSerialization.data(withJSONObject: document)
        guard let decoded = try? JSONDecoder().decode(ErasureCertificate.self, from: data) else { return nil }
        return decoded.problems(trusted: trusted)
    }

    func editAck(_ index: Int, _ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        { document in
            var acks = document["acks"] as! [[String: Any]]
            acks[index][key] = value
            document["acks"] = acks
        }
    }

    func test_validCertificate_verifies_andSurvivesJSON() throws {
        let original = valid()
        XCTAssertEqual(original.problems(trusted: trusted), [])
        let decoded = try JSONDecoder().decode(ErasureCertificate.self, from: try JSONEncoder().encode(original))
        XCTAssertEqual(decoded, original)
        XCTAssertEqual(decoded.problems(trusted: trusted), [])
        XCTAssertEqual(decoded.acks.map(\.scope), [.node, .node, .node], "a node certifies only itself")
        XCTAssertEqual(try problems { _ in }, [])
    }

    func test_everySignedRequestField_tampered_failsVerification() throws {
        let edits: [String: Any] = [
            "erasure_id": "er_2", "requested_at": "2023-11-14T22:00:00Z", "due_at": "2024-01-30T00:00:00Z", "jurisdiction": "cpra",
            "origin_node": "eu-2", "policy_version": 4, "link_hash": String(repeating: "cd", count: 32),
        ]
        for (field, value) in edits {
            let found = try problems { $0[field] = value }
            XCTAssertNotNil(found, field)
            XCTAssertTrue(found?.contains(.badRequestSignature) == true, "\(field): \(String(describing: found))")
        }
        // Backdating completion breaks the origin's completion signature.
        XCTAssertEqual(try problems { $0["completed_at"] = "2023-11-14T22:14:00Z" }, [.badCompletionSignature])
        // Expected regions: one fewer region (and its nodes) is a different request.
        let fewer = try problems {
            $0["expected_regions"] = ["eu"]
            $0["expected_nodes"] = ["eu": ["eu-1", "eu-2"]]
        }
        XCTAssertTrue(fewer?.contains(.badRequestSignature) == true, String(describing: fewer))
        let fewerNodes = try problems { $0["expected_nodes"] = ["eu": ["eu-1"], "us": ["us-1"]] }
        XCTAssertTrue(fewerNodes?.contains(.badRequestSignature) == true, String(describing: fewerNodes))
        XCTAssertNil(try problems { $0["expected_regions"] = ["eu"] }, "the list and the signed map must name the same regions")
    }

    func test_everySignedAckField_tampered_failsVerification() throws {
        // acks are sorted by region then node: 0 eu-1, 1 eu-2, 2 us-1.
        let edits: [(String, Any)] = [
            ("counts", ["subjects": 0, "features": 4, "identities": 1]), ("erased_at", "2023-11-14T22:13:26Z"),
            ("link_hash", String(repeating: "cd", count: 32)), ("wal_truncated", false), ("policy_version", 2),
            ("node", "eu-3"), ("region", "us"), ("request_hash", String(repeating: "00", count: 32)),
        ]
        for (field, value) in edits {
            let found = try problems(editAck(1, field, value))
            XCTAssertTrue(found?.contains { if case .badSignature = $0 { return true } else { return false } } == true,
                          "\(field): \(String(describing: found))")
        }
        let widened = try problems(editAck(1, "scope", "region"))
        XCTAssertTrue(widened?.contains(.badSignature(region: eu, node: "eu-2")) == true,
                      "a node's ack cannot be turned into one for its region: \(String(describing: widened))")
        XCTAssertNil(try problems(editAck(1, "scope", "cluster")), "an unknown scope does not decode")
        XCTAssertEqual(try problems(editAck(1, "signature", Base64.encode([UInt8](repeating: 0, count: 64)))),
                       [.badSignature(region: eu, node: "eu-2")])
    }

    func test_certificateMissingAnExpectedRegionOrNode_fails_evenWhenTheOriginSignsIt() {
        let request = request()
        XCTAssertEqual(certificate(request, acks: [ack(request, "eu-1"), ack(request, "eu-2")]).problems(trusted: trusted),
                       [.missingAck(region: us, node: "us-1")])
        XCTAssertEqual(certificate(request, acks: [ack(request, "eu-1"), ack(request, "us-1")]).problems(trusted: trusted),
                       [.missingAck(region: eu, node: "eu-2")], "a node that acked does not answer for the region's other node")
        let duplicated = certificate(request, acks: ["eu-1", "eu-2", "us-1", "us-1"].map { ack(request, $0) })
        XCTAssertEqual(duplicated.problems(trusted: trusted), [.duplicateAck(region: us, node: "us-1")])
        // Dropping an ack from a certificate the origin signed also breaks its completion signature.
        let valid = valid()
        let dropped = ErasureCertificate(request: valid.request, completedAt: valid.completedAt,
                                         completionSignature: valid.completionSignature, acks: Array(valid.acks.dropLast()))
        XCTAssertEqual(dropped.problems(trusted: trusted), [.badCompletionSignature, .missingAck(region: us, node: "us-1")])
    }

    func test_ackFromAnotherRequest_splicedIn_fails() {
        let request = request()
        // Same id and link, another request (other expected nodes): its hash differs.
        let other = SignedErasureRequest.signed(erasureID: "er_1", requestedAt: requestedAt, dueAt: request.dueAt, jurisdiction: "gdpr",
                                                originRegion: eu, originNode: "eu-1", policyVersion: 3, linkHash: request.linkHash,
                                                expectedNodes: [us: ["us-1"]], key: nodeKeys["eu-1"]!)
        let spliced = certificate(request, acks: [ack(request, "eu-1"), ack(request, "eu-2"), ack(other, "us-1")])
        XCTAssertEqual(spliced.problems(trusted: trusted), [.otherRequest(region: us, node: "us-1")])
        // Another subject's erasure.
        let otherSubject = self.request(id: "er_1", linkHash: [UInt8](repeating: 0x01, count: 32))
        XCTAssertTrue(certificate(request, acks: [ack(request, "eu-1"), ack(request, "eu-2"), ack(otherSubject, "us-1")])
            .problems(trusted: trusted).contains(.otherSubject(region: us, node: "us-1")))
        // Another request id: the ack, rebuilt under this certificate's id, no longer matches its signature.
        let elsewhere = self.request(id: "er_9")
        let moved = ack(elsewhere, "us-1")
        let rebuilt = ErasureAck(erasureID: "er_1", requestHash: moved.requestHash, region: moved.region, node: moved.node, scope: moved.scope,
                                 erasedAt: moved.erasedAt, counts: moved.counts, linkHash: moved.linkHash, walTruncated: moved.walTruncated,
                                 policyVersion: moved.policyVersion, signature: moved.signature, publicKey: moved.publicKey)
        XCTAssertEqual(certificate(request, acks: [ack(request, "eu-1"), ack(request, "eu-2"), rebuilt]).problems(trusted: trusted),
                       [.badSignature(region: us, node: "us-1"), .otherRequest(region: us, node: "us-1")])
    }

    func test_unexpectedAcks_andUntrustedKeys_fail() {
        let request = request()
        let stranger = Self.key(9)
        let extra = ErasureAck.signed(for: request, region: try! RegionID("br"), node: "br-1", erasedAt: requestedAt, counts: [:],
                                      walTruncated: true, policyVersion: 3, key: stranger)
        let withExtra = certificate(request, acks: ["eu-1", "eu-2", "us-1"].map { ack(request, $0) } + [extra])
        XCTAssertEqual(withExtra.problems(), [.unexpectedRegion(try! RegionID("br"))])
        XCTAssertEqual(valid().problems(trusted: trust(["eu-1", "eu-2", "us-1"], as: ["eu-1": stranger, "eu-2": stranger,
                                                                                         "us-1": nodeKeys["us-1"]!])),
                       [.untrustedRequestKey(region: eu), .untrustedCompletionKey(region: eu, node: "eu-1"),
                        .untrustedKey(region: eu, node: "eu-1"), .untrustedKey(region: eu, node: "eu-2")])
        // A node of the region signing for another: eu-1's key on an ack that says eu-2.
        let impostor = ErasureAck.signed(for: request, region: eu, node: "eu-2", erasedAt: requestedAt.adding(seconds: 5),
                                         counts: ["subjects": 0], walTruncated: true, policyVersion: 3, key: nodeKeys["eu-1"]!)
        let impersonated = certificate(request, acks: [ack(request, "eu-1"), impostor, ack(request, "us-1")])
        XCTAssertEqual(impersonated.problems(), [], "every signature checks and every node acked")
        XCTAssertEqual(impersonated.problems(trusted: trusted), [.untrustedKey(region: eu, node: "eu-2")])
        // A forger with their own key: every signature checks, no key is trusted.
        let forged = SignedErasureRequest.signed(erasureID: "er_1", requestedAt: requestedAt, dueAt: request.dueAt, jurisdiction: "gdpr",
                                                 originRegion: eu, originNode: "eu-1", policyVersion: 3, linkHash: request.linkHash,
                                                 expectedNodes: [eu: ["eu-1"]], key: stranger)
        let forgedAck = ErasureAck.signed(for: forged, region: eu, node: "eu-1", erasedAt: requestedAt, counts: [:], walTruncated: true,
                                          policyVersion: 3, key: stranger)
        let forgery = ErasureCertificate(request: forged, completedAt: completedAt,
                                         completionSignature: ErasureCompletion.signature(request: forged, completedAt: completedAt,
                                                                                          acks: [forgedAck], key: stranger),
                                         acks: [forgedAck])
        XCTAssertEqual(forgery.problems(), [])
        XCTAssertEqual(forgery.problems(trusted: trusted), [.untrustedRequestKey(region: eu), .untrustedCompletionKey(region: eu, node: "eu-1"),
                                                            .untrustedKey(region: eu, node: "eu-1")])
    }

    // MARK: Regions with a log

    /// eu's nodes share a region log: one of them (eu-2, not the origin)
    /// acks for the region; us acks per node; eu-2 signs the completion.
    func regionCertificate(regionAckBy signer: String = "eu-2", extra: [ErasureAck] = [],
                           completer: String = "eu-2") -> ErasureCertificate {
        let request = request()
        let regionAck = ErasureAck.signed(for: request, region: eu, node: signer, scope: .region, erasedAt: requestedAt.adding(seconds: 5),
                                          counts: ["subjects": 1, "features": 4, "identities": 1], walTruncated: true, policyVersion: 3,
                                          key: nodeKeys[signer] ?? Self.key(7))
        let acks = [regionAck, ack(request, "us-1")] + extra
        let key = nodeKeys[completer]!
        return ErasureCertificate(request: request, completedAt: completedAt, completedBy: completer, completionPublicKey: key.publicKey,
                                  completionSignature: ErasureCompletion.signature(request: request, completedAt: completedAt,
                                                                                   acks: acks, key: key),
                                  acks: acks)
    }

    func test_oneRegionAck_completesItsRegion_andANodeOfTheOriginRegionMaySignTheCompletion() throws {
        let certificate = regionCertificate()
        XCTAssertEqual(certificate.problems(trusted: trusted), [])
        let decoded = try JSONDecoder().decode(ErasureCertificate.self, from: try JSONEncoder().encode(certificate))
        XCTAssertEqual(decoded, certificate)
        XCTAssertEqual(decoded.completedBy, "eu-2")
        XCTAssertEqual(decoded.problems(trusted: trusted), [])
        // A node added to the region after the request may sign for the region it joined, if trusted as a node of it.
        let joined = regionCertificate(regionAckBy: "eu-3")
        XCTAssertEqual(joined.problems(trusted: trusted), [.untrustedKey(region: eu, node: "eu-3")])
        var withJoined = trusted
        withJoined.trust(Self.key(7).publicKey, region: eu, node: "eu-3")
        XCTAssertEqual(joined.problems(trusted: withJoined), [])
    }

    func test_aRegionAck_withAnotherAckOfItsRegion_orACompletionByAnUntrustedNode_fails() throws {
        let request = request()
        XCTAssertEqual(regionCertificate(extra: [ack(request, "eu-1")]).problems(trusted: trusted), [.regionAckWithOthers(eu)])
        // us-1 is trusted, but not as a node of the origin region.
        let wrongRegion = regionCertificate(completer: "us-1")
        XCTAssertEqual(wrongRegion.problems(trusted: trusted), [.untrustedCompletionKey(region: eu, node: "us-1")])
        // Relabelling the completion's signer does not move trust: the key is still eu-2's.
        var document = try json(regionCertificate())
        document["completed_by"] = "eu-1"
        let relabelled = try JSONDecoder().decode(ErasureCertificate.self, from: try JSONSerialization.data(withJSONObject: document))
        XCTAssertEqual(relabelled.problems(trusted: trusted), [.untrustedCompletionKey(region: eu, node: "eu-1")])
        document["completion_public_key"] = nil
        XCTAssertNil(try? JSONDecoder().decode(ErasureCertificate.self, from: try JSONSerialization.data(withJSONObject: document)),
                     "completed_by without its key does not decode")
    }

    func test_aCertificateWithoutCompletedBy_isTheOriginsCompletion() throws {
        var document = try json(valid())
        XCTAssertEqual(document["completed_by"] as? String, "eu-1")
        document["completed_by"] = nil
        document["completion_public_key"] = nil
        let older = try JSONDecoder().decode(ErasureCertificate.self, from: try JSONSerialization.data(withJSONObject: document))
        XCTAssertEqual(older, valid())
        XCTAssertEqual(older.problems(trusted: trusted), [])
    }

    /// The request's signed bytes, field by field as docs/FORMATS.md lays them out.
    func test_requestEncoding_isTheDocumentedLayout_andUnambiguous() {
        var expected: [UInt8] = []
        func string(_ text: String) {
            expected += withUnsafeBytes(of: UInt32(text.utf8.count).bigEndian, Array.init)
            expected += Array(text.utf8)
        }
        func int64(_ value: Int64) { expected += withUnsafeBytes(of: value.bigEndian, Array.init) }
        func uint32(_ value: UInt32) { expected += withUnsafeBytes(of: value.bigEndian, Array.init) }
        let request = request()
        string("domicile/erasure-request/v1")
        string("er_1")
        int64(requestedAt.milliseconds)
        int64(request.dueAt.milliseconds)
        string("gdpr")
        string("eu")
        string("eu-1")
        int64(3)
        uint32(32)
        expected += [UInt8](repeating: 0xAB, count: 32)
        uint32(2)
        string("eu")
        uint32(2)
        string("eu-1")
        string("eu-2")
        string("us")
        uint32(1)
        string("us-1")
        XCTAssertEqual(request.canonicalEncoding, expected)
        XCTAssertEqual(request.hash, SHA256.hash(expected))

        // Moving bytes between adjacent fields changes the encoding.
        func jurisdictionAndNode(_ jurisdiction: String, _ node: String) -> [UInt8] {
            SignedErasureRequest(erasureID: "er_1", requestedAt: requestedAt, dueAt: requestedAt, jurisdiction: jurisdiction,
                                 originRegion: eu, originNode: node, policyVersion: 3, linkHash: [], expectedNodes: [:],
                                 signature: [], publicKey: nodeKeys["eu-1"]!.publicKey).canonicalEncoding
        }
        XCTAssertNotEqual(jurisdictionAndNode("gdpr", "eu-1"), jurisdictionAndNode("gdpreu-1", ""))
        // Counts are sorted by name: the dictionary's order does not matter; one count more does.
        let one = ack(request, "eu-1")
        XCTAssertEqual(one.canonicalEncoding, ErasureAck(erasureID: one.erasureID, requestHash: one.requestHash, region: one.region,
                                                         node: one.node, scope: one.scope, erasedAt: one.erasedAt,
                                                         counts: Dictionary(uniqueKeysWithValues: one.counts.reversed().map { ($0.key, $0.value) }),
                                                         linkHash: one.linkHash, walTruncated: true, policyVersion: 3, signature: [],
                                                         publicKey: one.publicKey).canonicalEncoding)
    }
}
