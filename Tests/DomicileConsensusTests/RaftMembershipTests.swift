@testable import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

final class RaftMembershipTests: XCTestCase {
    func test_learner_isAddedCatchesUpIsPromotedAndANodeIsRemoved() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        for value in 1...5 { _ = try region.propose(n1, [UInt8(value)]) }
        try region.deliverAll()
        try region.heartbeat(n1)

        // A new node starts knowing nothing and is added as a learner.
        try region.add(n4, membership: .empty, seed: 44)
        _ = try region.change(n1, .addLearner(n4))
        try region.deliverAll()
        try region.heartbeat(n1)
        XCTAssertEqual(region.node(n4).membership.learners, [n4])
        XCTAssertEqual(region.states[n4], region.states[n1], "the learner caught up")
        XCTAssertEqual(region.node(n1).matchIndexes[n4], region.node(n1).lastIndex)

        // A learner does not count: with n2 and n3 down nothing commits.
        let learnerOnly = SimulatedRegion.cutting([n2, n3])
        let lost = try region.propose(n1, [50])
        try region.deliverAll(filter: learnerOnly)
        XCTAssertLessThan(region.node(n1).commitIndex, lost.index)
        try region.deliverAll()
        try region.heartbeat(n1)

        // Promoted, it votes and counts.
        _ = try region.change(n1, .promote(n4))
        try region.deliverAll()
        try region.heartbeat(n1)
        for name in region.names { XCTAssertEqual(region.node(name).membership.voters, [n1, n2, n3, n4], "\(name)") }

        // Removing n3: once the change is in, the leader sends it nothing.
        _ = try region.change(n1, .remove(n3))
        try region.deliverAll()
        try region.heartbeat(n1)
        XCTAssertEqual(region.node(n1).membership.voters, [n1, n2, n4])
        try region.tick(n1, times: region.settings.heartbeatTicks)
        XCTAssertFalse(region.inFlight.contains { $0.to == n3 })
        XCTAssertNil(region.node(n1).matchIndexes[n3])
        // The region of three commits without n3.
        let ticket = try region.propose(n1, [60])
        try region.deliverAll(filter: SimulatedRegion.cutting([n3]))
        XCTAssertGreaterThanOrEqual(region.node(n1).commitIndex, ticket.index)
    }

    func test_membership_oneChangeAtATime() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1, filter: { $0.kind != .appendResponse })
        XCTAssertThrowsError(try region.change(n1, .addLearner(n4))) { XCTAssertEqual($0 as? RaftError, .membershipChangePending) }
        try region.heartbeat(n1)  // the leader's own entry commits
        _ = try region.change(n1, .addLearner(n4))
        XCTAssertThrowsError(try region.change(n1, .addLearner(n5))) { XCTAssertEqual($0 as? RaftError, .membershipChangePending) }
        try region.deliverAll()
        try region.heartbeat(n1)
        XCTAssertNoThrow(try region.change(n1, .addLearner(n5)))
    }

    func test_membership_refusesChangesThatMakeNoSense() throws {
        let region = try SimulatedRegion(voters: [n1, n2])
        try region.elect(n1)
        try region.heartbeat(n1)
        for (change, name) in [(MembershipChange.promote(n2), "not a learner"), (.addLearner(n2), "member"), (.remove(n4), "not a member"),
                               (.remove(n1), "leader")] {
            XCTAssertThrowsError(try region.change(n1, change)) { error in
                guard case .invalidMembership = error as? RaftError else { return XCTFail("\(name): \(error)") }
            }
        }
    }

    func test_membership_takesEffectWhenAppendedAndRevertsWhenTruncated() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        try region.heartbeat(n1)
        let cutN1 = SimulatedRegion.cutting([n1])
        _ = try region.change(n1, .addLearner(n4))
        XCTAssertEqual(region.node(n1).membership.learners, [n4], "in force on the leader once appended")
        try region.deliverAll(filter: cutN1)
        let leader = try region.waitForLeader(among: [n2, n3], after: 1, filter: cutN1)
        _ = try region.propose(leader, [1])
        try region.deliverAll(filter: cutN1)
        for _ in 0..<region.settings.electionTicks {
            try region.tickAll()
            try region.deliverAll()
        }
        XCTAssertEqual(region.node(n1).membership.learners, [], "the uncommitted change went with its entry")
    }
}

final class RaftReadIndexTests: XCTestCase {
    func test_readIndex_leaderAnswersOnlyAfterAQuorumConfirmsItsLeadership() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        try region.heartbeat(n1)
        _ = try region.propose(n1, [1])
        try region.deliverAll()
        try region.requestRead(n1, context: 7)
        XCTAssertEqual(region.readStates[n1, default: []], [], "not before the heartbeat round")
        try region.deliverAll()
        XCTAssertEqual(region.readStates[n1], [ReadState(context: 7, index: 2)])
    }

    func test_readIndex_followerGetsTheIndexFromTheLeader() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        try region.heartbeat(n1)
        try region.requestRead(n2, context: 3)
        try region.deliverAll()
        XCTAssertEqual(region.readStates[n2], [ReadState(context: 3, index: 1)])
    }

    func test_readIndex_leaderCutOffFromTheMajorityNeverAnswers() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        try region.heartbeat(n1)
        let cutN1 = SimulatedRegion.cutting([n1])
        try region.requestRead(n1, context: 1)
        for _ in 0..<(3 * region.settings.electionTicks) {
            try region.tickAll()
            try region.deliverAll(filter: cutN1)
        }
        XCTAssertEqual(region.readStates[n1, default: []], [])
        XCTAssertNotEqual(region.node(n1).role, .leader)
    }

    func test_readIndex_newLeaderWaitsForAnEntryOfItsTerm() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1, filter: { $0.kind != .appendResponse })
        // The read arrives before the leader's own entry commits.
        XCTAssertEqual(region.node(n1).commitIndex, 0)
        try region.requestRead(n1, context: 5)
        XCTAssertEqual(region.readStates[n1, default: []], [])
        try region.deliverAll()
        try region.heartbeat(n1)
        XCTAssertEqual(region.readStates[n1], [ReadState(context: 5, index: 1)])
    }

    func test_readIndex_withoutALeaderIsRefused() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        XCTAssertThrowsError(try region.requestRead(n2, context: 1)) { XCTAssertEqual($0 as? RaftError, .noLeader) }
    }
}
