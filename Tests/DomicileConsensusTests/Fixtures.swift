@testable import DomicileConsensus
import DomicileModel
import DomicileSimulation
import XCTest

func node(_ name: String) -> NodeName { try! NodeName(name) }

let n1 = node("n1"), n2 = node("n2"), n3 = node("n3"), n4 = node("n4"), n5 = node("n5")

extension SimulatedRegion {
    /// Ticks `name` until it starts an election, then lets the messages flow
    /// (except those `filter` drops); returns whether it won.
    @discardableResult
    func elect(_ name: NodeName, filter: (RaftMessage) -> Bool = { _ in true }) throws -> Bool {
        try elect(name, through: { filter($0) ? $0 : nil })
    }

    @discardableResult
    func elect(_ name: NodeName, through network: (RaftMessage) -> RaftMessage?) throws -> Bool {
        for _ in 0..<(4 * settings.electionTicks) {
            try tick(name)
            if node(name).role != .follower { break }
        }
        try deliverAll(through: network)
        return node(name).role == .leader
    }

    /// Lets time pass (ticks and deliveries through `filter`) until one of
    /// `candidates` leads in a term above `term`.
    func waitForLeader(among candidates: Set<NodeName>, after term: UInt64, filter: (RaftMessage) -> Bool = { _ in true }) throws -> NodeName {
        for _ in 0..<(50 * settings.electionTicks) {
            try tickAll()
            try deliverAll(filter: filter)
            if let leader = candidates.first(where: { nodes[$0]?.role == .leader && node($0).term > term }) { return leader }
        }
        throw RegionLogViolation(.acknowledgedApplied, "no leader among \(candidates)")
    }

    /// Drops every message to or from `isolated`.
    static func cutting(_ isolated: Set<NodeName>) -> (RaftMessage) -> Bool {
        { !isolated.contains($0.from) && !isolated.contains($0.to) }
    }

    /// A heartbeat round (the leader's heartbeat interval) and its answers.
    func heartbeat(_ leader: NodeName, filter: (RaftMessage) -> Bool = { _ in true }) throws {
        try tick(leader, times: settings.heartbeatTicks)
        try deliverAll(filter: filter)
    }

    func commands(_ name: NodeName) -> [[UInt8]] {
        appliedEntries[name, default: []].compactMap {
            if case .command(let data) = $0.payload, !data.isEmpty { return data }
            return nil
        }
    }
}

func entry(_ index: UInt64, _ term: UInt64, _ data: [UInt8] = []) -> LogEntry {
    LogEntry(index: index, term: term, payload: .command(data))
}
