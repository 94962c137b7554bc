@testable import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

final class RaftReplicationTests: XCTestCase {
    func test_replication_entriesReachEveryNodeInOrderAndCommit() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        let payloads: [[UInt8]] = (1...20).map { [UInt8($0)] }
        for payload in payloads { _ = try region.propose(n1, payload) }
        try region.deliverAll()
        try region.heartbeat(n1)
        for name in region.names {
            XCTAssertEqual(region.commands(name), payloads, "\(name)")
        }
        XCTAssertEqual(region.node(n1).matchIndexes, [n2: 21, n3: 21])
    }

    func test_replication_appendsAreBatchedAndPipelined() throws {
        let region = try SimulatedRegion(voters: [n1, n2])
        try region.elect(n1)
        try region.heartbeat(n1)
        for value in 0..<40 { _ = try region.propose(n1, [UInt8(value)]) }
        let appends = region.inFlight.compactMap { message -> Int? in
            if case .append(_, _, let entries, _) = message.body, !entries.isEmpty { return entries.count }
            return nil
        }
        // At most `inflightAppendsMax` appends in flight, each of at most
        // `appendEntriesCountMax` entries.
        XCTAssertEqual(appends.count, region.settings.inflightAppendsMax)
        XCTAssertTrue(appends.allSatisfy { $0 <= region.settings.appendEntriesCountMax })
        try region.deliverAll()
        XCTAssertEqual(region.node(n1).commitIndex, 41)
    }

    func test_replication_conflictingEntriesOfAnOldLeaderAreTruncated() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        try region.heartbeat(n1)
        // n1 is cut off and appends entries no one else gets.
        let cutN1 = SimulatedRegion.cutting([n1])
        for value: UInt8 in [101, 102, 103] { _ = try region.propose(n1, [value]) }
        try region.deliverAll(filter: cutN1)
        // n2 or n3 leads the other in a new term.
        let leader = try region.waitForLeader(among: [n2, n3], after: 1, filter: cutN1)
        for value: UInt8 in [1, 2] { _ = try region.propose(leader, [value]) }
        try region.deliverAll(filter: cutN1)
        // Healed: n1 follows and replaces its uncommitted tail.
        for _ in 0..<region.settings.electionTicks {
            try region.tickAll()
            try region.deliverAll()
        }
        XCTAssertEqual(region.node(n1).leader, leader)
        XCTAssertEqual(region.commands(n1), [[1], [2]])
        XCTAssertEqual(region.disks[n1]!.entries.map(\.term), region.disks[leader]!.entries.map(\.term))
    }

    /// Raft's Figure 8: a leader must not commit an entry of an older term by
    /// counting replicas, or a later leader could overwrite it.
    func test_commit_onlyEntriesOfTheCurrentTermCommitByCounting() throws {
        let voters = Set([n1, n2, n3, n4, n5])
        let base = Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, membership: try Membership(voters: voters)), payload: [])
        func disk(_ entries: [LogEntry]) -> PersistedState {
            PersistedState(hardState: HardState(term: 3, vote: nil, commit: 1), snapshot: base, entries: entries)
        }
        // S1 led term 2 and gave entry 2 to S2 only; S5 led term 3 and wrote
        // its own entry 2 alone.
        var settings = RaftSettings.testing
        settings.appendEntriesCountMax = 1
        let region = try SimulatedRegion(restoring: [
            n1: disk([entry(1, 1), entry(2, 2, [22])]),
            n2: disk([entry(1, 1), entry(2, 2, [22])]),
            n3: disk([entry(1, 1)]),
            n4: disk([entry(1, 1)]),
            n5: disk([entry(1, 1), entry(2, 3, [33])]),
        ], settings: settings)
        // S1 is elected in term 4 without S5, and gets entry 2 (term 2) onto
        // S3 as well — a majority holds it — but its own entry 3 to no one.
        let withoutEntry3: (RaftMessage) -> RaftMessage? = { message in
            if message.from == n5 || message.to == n5 { return nil }
            guard case .append(let prevIndex, let prevTerm, let entries, let commit) = message.body else { return message }
            var changed = message
            changed.body = .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries.filter { $0.index < 3 }, commit: commit)
            return changed
        }
        XCTAssertTrue(try region.elect(n1, through: withoutEntry3))
        try region.tick(n1, times: region.settings.heartbeatTicks)
        try region.deliverAll(through: withoutEntry3)
        XCTAssertEqual(region.node(n1).term, 4)
        XCTAssertEqual(region.node(n1).matchIndexes[n2], 2)
        XCTAssertEqual(region.node(n1).matchIndexes[n3], 2)
        XCTAssertEqual(region.node(n1).commitIndex, 1, "entry 2 is on a majority but of term 2: not committed by counting")
        // S5 could still win term 5 (S2, S3, S4 see its last term 3 > 2),
        // which is why entry 2 must not count as committed.
        // Once the current term's entry 3 is on a majority, 2 and 3 commit.
        try region.heartbeat(n1, filter: SimulatedRegion.cutting([n5]))
        XCTAssertEqual(region.node(n1).commitIndex, 3)
        XCTAssertEqual(region.commands(n1), [[22]])
    }

    func test_restart_nodeRecoversItsLogFromItsDiskAlone() throws {
        let region = try SimulatedRegion(voters: [n1, n2, n3])
        try region.elect(n1)
        for value: UInt8 in 1...5 { _ = try region.propose(n1, [value]) }
        try region.deliverAll()
        try region.heartbeat(n1)
        region.crash(n2)
        try region.restart(n2, seed: 5)
        XCTAssertEqual(region.node(n2).lastIndex, 6)
        XCTAssertEqual(region.node(n2).commitIndex, 6)
        XCTAssertEqual(region.states[n2], region.states[n1], "the committed entries are applied again")
    }

    func test_restore_refusesADiskThatCannotBeThisMachinesOutput() throws {
        let base = Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, membership: try Membership(voters: [n1])), payload: [])
        let gap = PersistedState(hardState: HardState(term: 2), snapshot: base, entries: [entry(2, 1)])
        let commitBeyond = PersistedState(hardState: HardState(term: 2, commit: 3), snapshot: base, entries: [entry(1, 1)])
        for bad in [gap, commitBeyond] {
            XCTAssertThrowsError(try RaftNode(id: n1, restoring: bad, settings: .testing, randomSeed: 1)) { error in
                guard case .corruptState = error as? RaftError else { return XCTFail("\(error)") }
            }
        }
    }
}
