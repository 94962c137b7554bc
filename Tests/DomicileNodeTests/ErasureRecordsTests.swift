@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import DomicileTestSupport
import XCTest

/// Recording acks (`ErasureRecords.record`): a region acks once, and a
/// second ack for the whole region — the request path's and the leader's
/// retry racing, or two leaders — changes nothing instead of failing.
final class ErasureRecordsTests: XCTestCase {
    let directory = TemporaryDirectory("domicile-erasure-records")
    let eu = try! RegionID("eu")
    let us = try! RegionID("us")
    let key = try! Ed25519PrivateKey(seed: [UInt8](repeating: 3, count: 32))

    func test_aSecondRegionAck_changesNothing_andANodeAckAfterIt_isRefused() throws {
        let database = try Database(path: directory.file("node.sqlite"))
        try NodeSchema.migrator.migrate(database, appliedAt: 0)
        let request = SignedErasureRequest.signed(erasureID: "er_1", requestedAt: Timestamp(milliseconds: 10), dueAt: Timestamp(milliseconds: 20),
                                                  jurisdiction: "gdpr", originRegion: eu, originNode: "eu-1", policyVersion: 1,
                                                  linkHash: [UInt8](repeating: 7, count: 32),
                                                  expectedNodes: [eu: ["eu-1", "eu-2"], us: ["us-1"]], key: key)
        try ErasureRecords.insert(request, requestedBy: "privacy_officer", erasedPIDs: [], counts: ["subjects": 1], in: database)
        func regionAck(by node: String) -> ErasureAck {
            ErasureAck.signed(for: request, region: eu, node: node, scope: .region, erasedAt: Timestamp(milliseconds: 15),
                              counts: ["subjects": 1], walTruncated: true, policyVersion: 1, key: key)
        }
        let first = try ErasureRecords.record(regionAck(by: "eu-1"), here: eu, completer: "eu-1", key: key, now: Timestamp(milliseconds: 16),
                                              in: database)
        XCTAssertEqual(first.regions[eu], .erased)
        XCTAssertEqual(first.status, .pending, "us has not acked")
        let again = try ErasureRecords.record(regionAck(by: "eu-2"), here: eu, completer: "eu-2", key: key, now: Timestamp(milliseconds: 17),
                                              in: database)
        XCTAssertEqual(again.acks, first.acks, "the region's first ack stands alone")
        let nodeAck = ErasureAck.signed(for: request, region: eu, node: "eu-2", erasedAt: Timestamp(milliseconds: 15), counts: [:],
                                        walTruncated: true, policyVersion: 1, key: key)
        XCTAssertThrowsError(try ErasureRecords.record(nodeAck, here: eu, completer: "eu-1", key: key, now: Timestamp(milliseconds: 18),
                                                       in: database), "a node ack after the region's is not this request's shape")
    }
}
