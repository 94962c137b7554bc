@testable import DomicileNode
import DomicileModel
import XCTest

/// The region channel's request codecs parse what another node sent: they
/// round-trip what they write, and refuse — never trap on — anything else.
final class RegionCodecTests: XCTestCase {
    let call = ForwardedCall.Request(method: "POST", target: "/v1/subjects?x=1", headers: [("authorization", "Bearer t"), ("x-a", "b")],
                                     body: Array("{\"a\":1}".utf8), requestID: "req-1")

    func test_forwardedCalls_andAnswers_roundTrip() throws {
        XCTAssertEqual(try ForwardedCall.decodeRequest(ForwardedCall.encode(call)), call)
        let answer = ForwardedCall.Answer.response(status: 201, headers: [("content-type", "application/json")], body: [1, 2, 3], appliedIndex: 42)
        XCTAssertEqual(try ForwardedCall.decodeAnswer(ForwardedCall.encode(answer)), answer)
        XCTAssertEqual(try ForwardedCall.decodeAnswer(ForwardedCall.encode(.notLeader)), .notLeader)
    }

    func test_snapshotRequests_andOffers_roundTrip() throws {
        for request in [SnapshotTransfer.Request.open(atLeast: 7), .chunk(id: 9, offset: 1 << 20)] {
            XCTAssertEqual(try SnapshotTransfer.decodeRequest(SnapshotTransfer.encode(request)), request)
        }
        let offer = SnapshotTransfer.Offer(id: 12, byteCount: 4_096, digest: Array(repeating: 7, count: 32))
        XCTAssertEqual(try SnapshotTransfer.decodeOffer(SnapshotTransfer.encode(offer)), offer)
    }

    func test_truncatedExtendedAndWrongKinds_areRefused() {
        let bytes = ForwardedCall.encode(call)
        for length in 0..<bytes.count { XCTAssertThrowsError(try ForwardedCall.decodeRequest(Array(bytes.prefix(length))), "\(length)") }
        XCTAssertThrowsError(try ForwardedCall.decodeRequest(bytes + [0]))
        XCTAssertThrowsError(try ForwardedCall.decodeRequest([SnapshotTransfer.requestKind] + bytes.dropFirst()))
        XCTAssertThrowsError(try ForwardedCall.decodeAnswer([1, 0, 99] + Array(repeating: 0, count: 8) + [0, 0, 0, 0, 0, 0]),
                             "a status below 100")
        XCTAssertThrowsError(try SnapshotTransfer.decodeOffer(SnapshotTransfer.encode(.init(id: 1, byteCount: 0, digest: Array(repeating: 0, count: 32)))),
                             "an empty snapshot")
        XCTAssertThrowsError(try SnapshotTransfer.decodeRequest([SnapshotTransfer.requestKind, 3]))
    }

    /// Seeded random and mutated inputs: every decoder refuses or decodes; none traps.
    func test_randomAndMutatedBytes_neverTrap() {
        var random = SeededRandom(seed: 14)
        let seeds = [ForwardedCall.encode(call), ForwardedCall.encode(.response(status: 200, headers: [("a", "b")], body: [1], appliedIndex: 3)),
                     SnapshotTransfer.encode(.chunk(id: 1, offset: 2)),
                     SnapshotTransfer.encode(.init(id: 1, byteCount: 9, digest: Array(repeating: 1, count: 32)))]
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = seeds[Int(random.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + Int(random.next() % 4)) where !bytes.isEmpty {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            if (try? ForwardedCall.decodeRequest(bytes)) != nil { decoded += 1 }
            if (try? ForwardedCall.decodeAnswer(bytes)) != nil { decoded += 1 }
            if (try? SnapshotTransfer.decodeRequest(bytes)) != nil { decoded += 1 }
            if (try? SnapshotTransfer.decodeOffer(bytes)) != nil { decoded += 1 }
        }
        XCTAssertGreaterThan(decoded, 0, "some mutations still decode: the inputs reached the decoders' depths")
    }
}
