@testable import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

final class RaftSnapshotTests: XCTestCase {
    func test_snapshot_followerBehindTheFirstIndexReceivesTheSnapshot() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        try region.heartbeat(n1)
        let cutN3 = SimulatedRegion.cutting([n3])
        for value in 1...12 { _ = try region.propose(n1, [UInt8(value)]) }
        try region.deliverAll(filter: cutN3)
        try region.heartbeat(n1, filter: cutN3)
        try region.compact(n1)
        XCTAssertEqual(region.node(n1).firstIndex, 14, "the leader's log starts after its snapshot")

        try region.heartbeat(n1)
        XCTAssertEqual(region.disks[n3]!.snapshot.metadata.index, 13, "n3 persisted the leader's snapshot")
        XCTAssertEqual(region.states[n3], region.states[n1], "and installed it")
        // Replication resumes after the snapshot.
        _ = try region.propose(n1, [99])
        try region.deliverAll()
        try region.heartbeat(n1)
        XCTAssertEqual(region.states[n3], region.states[n1])
        XCTAssertEqual(region.commands(n3), [[99]])
    }

    func test_snapshot_restartFromASnapshotAndTheEntriesAfterIt() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        for value in 1...6 { _ = try region.propose(n1, [UInt8(value)]) }
        try region.deliverAll()
        try region.heartbeat(n1)
        try region.compact(n2)
        _ = try region.propose(n1, [7])
        try region.deliverAll()
        try region.heartbeat(n1)
        region.crash(n2)
        try region.restart(n2, seed: 3)
        XCTAssertEqual(region.node(n2).firstIndex, 8)
        XCTAssertEqual(region.states[n2], region.states[n1])
    }

    func test_compact_refusesWhatIsNotAppliedOrAlreadyCompacted() throws {
        let region = try SimulatedRegion(voters: [n1])
        try region.elect(n1)
        var machine = region.node(n1)
        XCTAssertThrowsError(try machine.compact(through: 0, payload: []))
        XCTAssertThrowsError(try machine.compact(through: machine.lastIndex + 1, payload: []))
    }
}

final class RaftTransferTests: XCTestCase {
    func test_transfer_leadershipMovesToTheTargetAndProposalsWaitMeanwhile() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        // n2 lags: the leader first brings it up to date.
        for value in 1...5 { _ = try region.propose(n1, [UInt8(value)]) }
        try region.deliverAll(filter: SimulatedRegion.cutting([n2]))
        try region.transfer(n1, to: n2)
        XCTAssertThrowsError(try region.propose(n1, [9])) { XCTAssertEqual($0 as? RaftError, .transferInProgress) }
        // Its window to n2 is full of lost appends: the next heartbeat's
        // answer restarts the catch-up, and the hand-over follows.
        try region.heartbeat(n1)
        XCTAssertEqual(region.node(n2).role, .leader)
        XCTAssertEqual(region.node(n2).term, 2)
        XCTAssertEqual(region.node(n1).leader, n2)
        try region.heartbeat(n2)
        XCTAssertEqual(region.commands(n2), (1...5).map { [UInt8($0)] }, "nothing committed was lost")
    }

    func test_transfer_isAbandonedAfterAnElectionTimeout() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        try region.transfer(n1, to: n2)
        region.inFlight.removeAll()
        try region.tick(n1, times: region.settings.electionTicks)
        try region.deliverAll(filter: SimulatedRegion.cutting([n2]))
        XCTAssertEqual(region.node(n1).role, .leader)
        XCTAssertNoThrow(try region.propose(n1, [1]))
    }

    func test_transfer_refusesATargetThatIsNotAVoter() throws {
        let region = try SimulatedRegion(voters: [n1, n2], learners: [n3])
        try region.elect(n1)
        var machine = region.node(n1)
        for target in [n1, n3, n4] {
            XCTAssertThrowsError(try machine.transferLeadership(to: target))
        }
    }
}
