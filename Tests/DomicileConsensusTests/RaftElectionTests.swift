@testable import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

final class RaftElectionTests: XCTestCase {
    func test_election_singleVoterLeadsAndCommitsLocally() throws {
        let region = try SimulatedRegion(voters: [n1])
        XCTAssertTrue(try region.elect(n1))
        let ticket = try region.propose(n1, [7])
        XCTAssertEqual(region.node(n1).commitIndex, ticket.index)
        XCTAssertEqual(region.commands(n1), [[7]])
    }

    func test_election_threeNodesAgreeOnOneLeader() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        XCTAssertTrue(try region.elect(n1))
        for name in [n2, n3] {
            XCTAssertEqual(region.node(name).role, .follower)
            XCTAssertEqual(region.node(name).leader, n1)
            XCTAssertEqual(region.node(name).term, 1)
        }
        // The leader's empty entry commits on all.
        try region.heartbeat(n1)
        XCTAssertEqual(region.names.map { region.node($0).commitIndex }, [1, 1, 1])
    }

    func test_election_restartedNodeKeepsItsTermAndVote() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        region.crash(n2)
        try region.restart(n2, seed: 9)
        XCTAssertEqual(region.node(n2).term, 1)
        XCTAssertEqual(region.node(n2).vote, n1)
        XCTAssertEqual(region.node(n2).lastIndex, 1)
    }

    func test_preVote_partitionedNodeRejoiningDoesNotDisruptTheLeader() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        let cut = SimulatedRegion.cutting([n3])
        // n3 is cut off for many election timeouts while the others keep
        // their leader.
        for _ in 0..<(10 * region.settings.electionTicks) {
            try region.tickAll()
            try region.deliverAll(filter: cut)
        }
        XCTAssertEqual(region.node(n3).term, 1, "pre-votes do not raise the term")
        // It rejoins: the leader stays.
        for _ in 0..<(3 * region.settings.electionTicks) {
            try region.tickAll()
            try region.deliverAll()
        }
        XCTAssertEqual(region.node(n1).role, .leader)
        XCTAssertEqual(region.node(n1).term, 1)
        XCTAssertEqual(region.node(n3).leader, n1)
    }

    func test_preVote_withoutItARejoiningNodeDeposesTheLeader() throws {
        // The counterpart of the previous test: what pre-vote prevents.
        var settings = RaftSettings.testing
        settings.preVote = false
        settings.checkQuorum = false
        let region = try SimulatedRegion(voters: [n1, n2, n3], settings: settings)
        try region.elect(n1)
        for _ in 0..<(10 * settings.electionTicks) {
            try region.tickAll()
            try region.deliverAll(filter: SimulatedRegion.cutting([n3]))
        }
        XCTAssertGreaterThan(region.node(n3).term, 1)
        for _ in 0..<settings.heartbeatTicks {
            try region.tickAll()
            try region.deliverAll()
        }
        XCTAssertGreaterThan(region.node(n1).term, 1, "the old leader met a higher term")
    }

    func test_checkQuorum_leaderCutOffFromTheMajorityStepsDown() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        for _ in 0..<(2 * region.settings.electionTicks) {
            try region.tick(n1)
            try region.deliverAll(filter: SimulatedRegion.cutting([n1]))
        }
        XCTAssertEqual(region.node(n1).role, .follower)
        XCTAssertThrowsError(try region.propose(n1, [1])) { error in
            XCTAssertEqual(error as? RaftError, .notLeader(leader: nil))
        }
    }

    func test_learner_neverCampaigns() throws {
        let region = try SimulatedRegion(voters: [n1], learners: [n2])
        try region.tick(n2, times: 10 * region.settings.electionTicks)
        XCTAssertEqual(region.node(n2).role, .follower)
        XCTAssertEqual(region.node(n2).term, 0)
    }
}

final class RaftSettingsTests: XCTestCase {
    func test_settings_refuseValuesThatCannotWork() {
        var heartbeatTooSlow = RaftSettings.testing
        heartbeatTooSlow.heartbeatTicks = heartbeatTooSlow.electionTicks
        var noWindow = RaftSettings.testing
        noWindow.inflightAppendsMax = 0
        var hugeEntries = RaftSettings.testing
        hugeEntries.entryBytesMax = RaftCodec.entryBytesMax + 1
        for settings in [heartbeatTooSlow, noWindow, hugeEntries] {
            XCTAssertThrowsError(try RaftNode(id: n1, membership: .empty, settings: settings, randomSeed: 1)) { error in
                guard case .invalidSettings = error as? RaftError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertNoThrow(try RaftSettings().validate())
    }
}
