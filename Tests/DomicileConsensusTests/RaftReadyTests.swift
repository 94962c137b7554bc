@testable import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

/// The output contract: whatever a message promises is in the same `Ready`'s
/// things to persist, which the shell writes before it sends.
final class RaftReadyTests: XCTestCase {
    func test_ready_aVoteLeavesWithItsPersistedVote() throws {
        var follower = try RaftNode(id: n2, membership: try Membership(voters: [n1, n2, n3]), settings: .testing, randomSeed: 1)
        follower.advance(follower.ready())
        follower.step(RaftMessage(from: n1, to: n2, term: 1, body: .vote(lastIndex: 0, lastTerm: 0, transfer: false)))
        let ready = follower.ready()
        XCTAssertEqual(ready.messages.map(\.body), [.voteResponse(granted: true)])
        XCTAssertEqual(ready.hardState, HardState(term: 1, vote: n1, commit: 0))
    }

    func test_ready_anAcknowledgedAppendLeavesWithItsEntries() throws {
        var follower = try RaftNode(id: n2, membership: try Membership(voters: [n1, n2]), settings: .testing, randomSeed: 1)
        follower.advance(follower.ready())
        follower.step(RaftMessage(from: n1, to: n2, term: 1,
                                  body: .append(prevIndex: 0, prevTerm: 0, entries: [entry(1, 1), entry(2, 1, [5])], commit: 1)))
        let ready = follower.ready()
        XCTAssertEqual(ready.messages.map(\.body), [.appendResponse(index: 2, rejected: false, hint: 0)])
        XCTAssertEqual(ready.entries.map(\.index), [1, 2])
        XCTAssertEqual(ready.committedEntries.map(\.index), [1], "applied only once persisted, in the same Ready")
        follower.advance(ready)
        XCTAssertFalse(follower.hasReady)
    }

    func test_ready_aLeaderCountsItsOwnEntryOnlyOncePersisted() throws {
        var leader = try RaftNode(id: n1, membership: try Membership(voters: [n1]), settings: .testing, randomSeed: 1)
        leader.advance(leader.ready())
        while leader.role != .leader { leader.tick() }
        let first = leader.ready()
        XCTAssertEqual(first.entries.map(\.index), [1])
        XCTAssertEqual(leader.commitIndex, 0, "not committed before the shell persisted it")
        leader.advance(first)
        XCTAssertEqual(leader.commitIndex, 1)
        XCTAssertEqual(leader.ready().committedEntries.map(\.index), [1])
    }
}
