@testable import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

final class RaftCodecTests: XCTestCase {
    static let membership = try! Membership(voters: [n1, n2, n3], learners: [n4])
    static let messages: [RaftMessage] = {
        let bodies: [RaftMessage.Body] = [
            .preVote(lastIndex: 9, lastTerm: 3),
            .preVoteResponse(granted: true),
            .vote(lastIndex: 9, lastTerm: 3, transfer: true),
            .voteResponse(granted: false),
            .append(prevIndex: 4, prevTerm: 2, entries: [entry(5, 2, [1, 2]), LogEntry(index: 6, term: 5, payload: .membership(membership))],
                    commit: 4),
            .appendResponse(index: 6, rejected: true, hint: 3),
            .heartbeat(commit: 6, readRound: 2),
            .heartbeatResponse(readRound: 2),
            .snapshot(Snapshot(metadata: SnapshotMetadata(index: 10, term: 4, membership: membership), payload: [9, 9, 9])),
            .timeoutNow,
            .readIndex(context: 77),
            .readIndexResponse(context: 77, index: 12),
        ]
        return bodies.map { RaftMessage(from: n1, to: n2, term: 5, body: $0) }
    }()

    func test_codec_roundTripsEveryMessageType() throws {
        for message in Self.messages {
            XCTAssertEqual(try RaftCodec.decodeMessage(RaftCodec.encode(message)), message)
        }
        XCTAssertEqual(Self.messages.map(\.kind.rawValue), Array(1...12), "wire numbers are append-only")
    }

    func test_codec_roundTripsStoredValues() throws {
        let stored = LogEntry(index: 3, term: 2, payload: .membership(Self.membership))
        XCTAssertEqual(try RaftCodec.decodeEntry(RaftCodec.encode(stored)), stored)
        for hardState in [HardState(), HardState(term: 9, vote: n3, commit: 7)] {
            XCTAssertEqual(try RaftCodec.decodeHardState(RaftCodec.encode(hardState)), hardState)
        }
        let metadata = SnapshotMetadata(index: 4, term: 2, membership: Self.membership)
        XCTAssertEqual(try RaftCodec.decodeSnapshotMetadata(RaftCodec.encode(metadata)), metadata)
    }

    func test_codec_refusesMalformedMessagesWithTypedErrors() {
        let valid = RaftCodec.encode(Self.messages[4])
        var future = valid
        future[0] = 2
        var unknownType = valid
        unknownType[1] = 200
        var badFlag = RaftCodec.encode(Self.messages[1])
        badFlag[badFlag.count - 1] = 2
        let gap = RaftCodec.encode(RaftMessage(from: n1, to: n2, term: 5,
                                               body: .append(prevIndex: 4, prevTerm: 2, entries: [entry(6, 2)], commit: 0)))
        let termAhead = RaftCodec.encode(RaftMessage(from: n1, to: n2, term: 1,
                                                     body: .append(prevIndex: 4, prevTerm: 1, entries: [entry(5, 2)], commit: 0)))
        let cases: [([UInt8], RaftCodec.Failure)] = [
            ([], .truncated),
            (Array(valid.dropLast()), .truncated),
            (future, .unsupportedVersion(2)),
            (unknownType, .unknownMessageType(200)),
            (valid + [0], .malformed("trailing bytes")),
            (badFlag, .malformed("a flag is 0 or 1")),
            (gap, .malformed("entries do not follow prevIndex")),
            (termAhead, .malformed("entry terms out of order")),
        ]
        for (bytes, expected) in cases {
            XCTAssertThrowsError(try RaftCodec.decodeMessage(bytes)) { XCTAssertEqual($0 as? RaftCodec.Failure, expected) }
        }
        // Terms and indexes stop at 2^62, so no `+ 1` on them can trap.
        let farTerm = RaftCodec.encode(RaftMessage(from: n1, to: n2, term: RaftCodec.positionMax + 1, body: .timeoutNow))
        XCTAssertThrowsError(try RaftCodec.decodeMessage(farTerm)) { XCTAssertEqual($0 as? RaftCodec.Failure, .tooLarge("a term or index above 2^62")) }
        let farHint = RaftCodec.encode(RaftMessage(from: n1, to: n2, term: 1, body: .appendResponse(index: 1, rejected: true, hint: .max)))
        XCTAssertThrowsError(try RaftCodec.decodeMessage(farHint))
        // A length beyond the limit is refused before anything is allocated.
        var huge = RaftCodec.encode(RaftMessage(from: n1, to: n2, term: 5, body: .append(prevIndex: 0, prevTerm: 0, entries: [], commit: 0)))
        huge.replaceSubrange((huge.count - 4)..., with: [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try RaftCodec.decodeMessage(huge)) { XCTAssertEqual($0 as? RaftCodec.Failure, .tooLarge("4294967295 entries")) }
    }

    func test_codec_neverTrapsOnRandomOrMutatedBytes() {
        var generator = SeededRandom(seed: 2026)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<120, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if !bytes.isEmpty { bytes[0] = RaftCodec.version }
            if bytes.count > 1 { bytes[1] = UInt8.random(in: 1...13, using: &generator) }
            _ = try? RaftCodec.decodeMessage(bytes)
            _ = try? RaftCodec.decodeEntry(bytes)
            _ = try? RaftCodec.decodeHardState(bytes)
            _ = try? RaftCodec.decodeSnapshotMetadata(bytes)
        }
        for message in Self.messages {
            let valid = RaftCodec.encode(message)
            for cut in 0..<valid.count { _ = try? RaftCodec.decodeMessage(Array(valid.prefix(cut))) }
            for _ in 0..<500 {
                var changed = valid
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    changed[Int.random(in: 0..<changed.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
                _ = try? RaftCodec.decodeMessage(changed)
            }
        }
    }

    /// A decoded message, however odd, never traps the machine either.
    func test_machine_neverTrapsOnDecodedMutatedMessages() throws {
        var generator = SeededRandom(seed: 7)
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        _ = try region.propose(n1, [1, 2, 3])
        try region.deliverAll()
        for message in Self.messages {
            let valid = RaftCodec.encode(message)
            for _ in 0..<300 {
                var changed = valid
                changed[Int.random(in: 2..<changed.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                guard var decoded = try? RaftCodec.decodeMessage(changed) else { continue }
                for target in [n1, n2] {
                    decoded.to = target
                    decoded.from = n3
                    var machine = region.node(target)
                    machine.step(decoded)
                    _ = machine.ready()
                }
            }
        }
    }
}
