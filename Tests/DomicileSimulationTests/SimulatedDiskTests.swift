import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

/// The simulated disk's semantics, and a node's shell crashing at each point
/// of its loop: it restarts from its log store and database alone.
final class SimulatedDiskTests: XCTestCase {
    private let n1 = try! NodeName("n1"), n2 = try! NodeName("n2"), n3 = try! NodeName("n3")

    func test_disk_aCrashLosesUnsyncedTransactionsWholeAndKeepsSyncedOnes() {
        var disk = SimulatedDisk([1])
        disk.write([1, 2])
        XCTAssertEqual(disk.contents, [1, 2], "the process reads its own unsynced write")
        disk.crash(surviving: 0)
        XCTAssertEqual(disk.contents, [1], "an unsynced transaction is lost whole")

        disk.write([1, 2])
        disk.sync()
        disk.write([1, 2, 3])
        disk.write([1, 2, 3, 4])
        disk.crash(surviving: 1)
        XCTAssertEqual(disk.contents, [1, 2, 3], "a crash keeps a prefix of the unsynced transactions, each whole")
        XCTAssertEqual(disk.unsyncedCount, 0)
    }

    func test_crashBeforeSync_theLostWriteWasNeverAcknowledged() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        let leader = try electLeader(region)
        let follower = [n1, n2, n3].first { $0 != leader }!
        var armed = true
        region.crashPoint = { name in
            guard armed, name == follower else { return nil }
            armed = false
            return .beforeSync(survives: false)
        }
        let ticket = try region.propose(leader, [7])
        try region.deliverAll()
        XCTAssertNil(region.nodes[follower], "the follower crashed handling the append")
        XCTAssertLessThan(region.logStores[follower]!.synced.entries.last?.index ?? 0, ticket.index, "its unsynced write was lost")

        try region.restart(follower, seed: 9)
        try settle(region, leader: leader)
        for name in [n1, n2, n3] { XCTAssertGreaterThanOrEqual(region.state(of: name)!.index, ticket.index, "\(name) applied the entry") }
    }

    func test_crashWhileApplying_theRestartAppliesTheRestFromTheLog() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        let leader = try electLeader(region)
        let follower = [n1, n2, n3].first { $0 != leader }!
        _ = try region.propose(leader, [1])
        try settle(region, leader: leader)
        let before = region.state(of: follower)!.index
        var armed = true
        region.crashPoint = { name in
            // The follower's Ready that applies the next entry.
            guard armed, name == follower, region.node(follower).commitIndex > before else { return nil }
            armed = false
            return .whileApplying(transactions: 0)
        }
        let ticket = try region.propose(leader, [2])
        try settle(region, leader: leader)
        XCTAssertNil(region.nodes[follower], "the follower crashed before applying")
        XCTAssertEqual(region.databases[follower]!.synced.index, before, "its database kept its applied index")
        XCTAssertGreaterThanOrEqual(region.logStores[follower]!.synced.hardState.commit, ticket.index, "its log store knows the entry committed")

        try region.restart(follower, seed: 9)
        try settle(region, leader: leader)
        XCTAssertEqual(region.state(of: follower), region.state(of: leader), "the restart applied the rest, once")
    }

    func test_crashBetweenPersistingAndInstallingASnapshot_theRestartInstallsItFirst() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        let leader = try electLeader(region)
        let lagging = [n1, n2, n3].first { $0 != leader }!
        for value in UInt8(1)...12 {
            _ = try region.propose(leader, [value])
            try region.deliverAll(filter: { $0.to != lagging && $0.from != lagging })
        }
        try region.tick(leader, times: region.settings.heartbeatTicks)
        try region.deliverAll(filter: { $0.to != lagging && $0.from != lagging })
        try region.compact(leader)
        let snapshotIndex = region.node(leader).firstIndex - 1
        XCTAssertGreaterThan(snapshotIndex, 0)

        region.crashPoint = { name in name == lagging && region.node(lagging).firstIndex > 1 ? .beforeApply : nil }
        for _ in 0..<(4 * region.settings.electionTicks) where region.nodes[lagging] != nil {
            try region.tick(leader)
            try region.deliverAll()
        }
        XCTAssertNil(region.nodes[lagging], "the lagging node crashed after persisting the snapshot")
        XCTAssertEqual(region.logStores[lagging]!.synced.snapshot.metadata.index, snapshotIndex)
        XCTAssertLessThan(region.databases[lagging]!.synced.index, snapshotIndex, "and before installing it")

        region.crashPoint = { _ in nil }
        try region.restart(lagging, seed: 9)
        XCTAssertGreaterThanOrEqual(region.databases[lagging]!.synced.index, snapshotIndex, "the restart installed it first")
        try settle(region, leader: leader)
        XCTAssertEqual(region.state(of: lagging), region.state(of: leader))
    }

    // MARK: Helpers

    private func electLeader(_ region: SimulatedRegion) throws -> NodeName {
        for _ in 0..<200 {
            try region.tickAll()
            try region.deliverAll()
            if let leader = region.live.first(where: { region.node($0).role == .leader }) {
                try settle(region, leader: leader)
                return leader
            }
        }
        throw RegionLogViolation(.acknowledgedApplied, "no leader")
    }

    /// Heartbeat rounds until every node up has applied the leader's commit index.
    private func settle(_ region: SimulatedRegion, leader: NodeName) throws {
        for _ in 0..<50 {
            try region.tick(leader, times: region.settings.heartbeatTicks)
            try region.deliverAll()
            let commit = region.node(leader).commitIndex
            if region.live.allSatisfy({ region.state(of: $0)!.index >= commit }) { return }
        }
    }
}
