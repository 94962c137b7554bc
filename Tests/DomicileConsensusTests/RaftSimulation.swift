@testable import DomicileConsensus
import DomicileModel

/// One seeded run of a region under a nemesis: a network that drops, delays,
/// reorders and duplicates messages and partitions the nodes; crashes (also
/// between persisting a `Ready` and sending its messages) and restarts from
/// disk; compactions, leadership transfers, linearizable reads and, when
/// asked, membership changes. Safety is checked after every step
/// (`SafetyChecker`); at the end the nemesis stops, everything heals, and
/// every acknowledged proposal must be applied by every member.
/// Everything is drawn from `seed`, so a failing run replays exactly.
final class RaftSimulation {
    struct Plan {
        var voters = 3
        /// Spare nodes added as learners, promoted, and voters removed.
        var membershipChanges = false
        /// Time units (one tick each) under the nemesis, then to heal.
        var chaosTime = 300
        var healTimeMax = 600
        var dropProbability = 0.05
        var duplicateProbability = 0.02
        var crashProbability = 0.01
        var crashAfterPersistProbability = 0.005
        var restartProbability = 0.05
        var partitionProbability = 0.01
        var healProbability = 0.04
        var proposeProbability = 0.4
        var readProbability = 0.05
        var compactProbability = 0.02
        var transferProbability = 0.004
        var membershipChangeProbability = 0.01
    }

    let seed: UInt64
    let plan: Plan
    private var random: SeededRandom
    private let region: SimulatedRegion
    private var now: UInt64 = 0
    private var network: [(at: UInt64, message: RaftMessage)] = []
    /// The side of each node while partitioned.
    private var sides: [NodeName: Int]?
    private var chaos = true
    private var spares: [NodeName] = []
    /// Proposals not yet applied on their proposer, by index.
    private var proposals: [UInt64: (ticket: ProposalTicket, proposer: NodeName, data: [UInt8])] = [:]
    private var nextCommand: UInt32 = 0
    private var nextRead: UInt64 = 0
    private(set) var acknowledgedIndexMax: UInt64 = 0
    private(set) var acknowledgedCount = 0

    init(seed: UInt64, plan: Plan) throws {
        self.seed = seed
        self.plan = plan
        random = SeededRandom(seed: seed)
        // Half the runs without pre-vote, half without check-quorum (which
        // also acts as the leader's lease): more elections, more old leaders.
        var settings = RaftSettings.testing
        settings.preVote = Bool.random(using: &random)
        settings.checkQuorum = Bool.random(using: &random)
        let voters = (1...plan.voters).map { node("n\($0)") }
        region = try SimulatedRegion(voters: voters, settings: settings, seed: seed)
        region.recordsApplied = false
        if plan.membershipChanges { spares = [node("s1"), node("s2")] }
        region.onApply = { [unowned self] name, entry in self.applied(entry, on: name) }
        region.crashAfterPersist = { [unowned self] _ in self.chaos && self.chance(self.plan.crashAfterPersistProbability) }
    }

    func run() throws {
        for _ in 0..<plan.chaosTime { try step() }
        chaos = false
        sides = nil
        for name in region.names where region.nodes[name] == nil { try region.restart(name, seed: random.next()) }
        for _ in 0..<plan.healTimeMax {
            try step()
            if converged() { return }
        }
        throw SafetyViolation(description: "after healing, the members did not all apply through \(acknowledgedIndexMax): "
            + region.names.map { "\($0)@\(region.states[$0]?.index ?? 0)" }.joined(separator: " "))
    }

    // MARK: One time unit

    private func step() throws {
        now += 1
        if chaos { try nemesis() }
        try client()
        for name in region.live where !chaos || chance(0.95) { try region.tick(name) }
        try flowMessages()
    }

    private func nemesis() throws {
        for name in region.live where chance(plan.crashProbability) { region.crash(name) }
        for name in region.names where region.nodes[name] == nil && chance(plan.restartProbability) {
            try region.restart(name, seed: random.next())
        }
        if sides == nil, chance(plan.partitionProbability) {
            sides = Dictionary(uniqueKeysWithValues: region.names.map { ($0, Int.random(in: 0...1, using: &random)) })
        } else if sides != nil, chance(plan.healProbability) {
            sides = nil
        }
        for name in region.live {
            let node = region.node(name)
            if chance(plan.compactProbability), let state = region.states[name], state.index > node.firstIndex + 4,
               state.index <= node.lastIndex {
                try region.compact(name)
            }
        }
        if let leader = leaders.randomElement(using: &random) {
            if chance(plan.transferProbability), let target = region.node(leader).membership.voters.sorted().randomElement(using: &random) {
                try refusable { try region.transfer(leader, to: target) }
            }
            if plan.membershipChanges, chance(plan.membershipChangeProbability) { try changeMembership(on: leader) }
        }
    }

    private func changeMembership(on leader: NodeName) throws {
        let membership = region.node(leader).membership
        let change: MembershipChange
        if let learner = membership.learners.sorted().first {
            change = .promote(learner)
        } else if membership.voters.count > 3, let voter = membership.voters.subtracting([leader]).sorted().randomElement(using: &random) {
            change = .remove(voter)
        } else if !spares.isEmpty {
            change = .addLearner(spares[0])
        } else {
            return
        }
        guard try refusable({ try region.change(leader, change) }) != nil else { return }
        if case .addLearner(let name) = change, region.nodes[name] == nil, !region.names.contains(name) {
            spares.removeFirst()
            try region.add(name, membership: .empty, seed: random.next())
        }
    }

    private func client() throws {
        if chance(plan.proposeProbability), let leader = leaders.randomElement(using: &random) {
            nextCommand += 1
            var writer = BinaryWriter()
            writer.write(nextCommand)
            if let ticket = try refusable({ try region.propose(leader, writer.bytes) }) {
                proposals[ticket.index] = (ticket, leader, writer.bytes)
            }
        }
        if chance(plan.readProbability), let name = region.live.randomElement(using: &random) {
            nextRead += 1
            region.checker.readFloors[nextRead] = region.checker.highestCommitted
            try refusable { try region.requestRead(name, context: nextRead) }
        }
    }

    /// Runs a request the machine may refuse (a `RaftError`); a safety
    /// violation found while the shell handles it still fails the run.
    @discardableResult
    private func refusable<T>(_ body: () throws -> T) throws -> T? {
        do {
            return try body()
        } catch is RaftError {
            return nil
        }
    }

    private var leaders: [NodeName] { region.live.filter { region.node($0).role == .leader } }

    // MARK: Network

    private func flowMessages() throws {
        for _ in 0..<64 {
            schedule()
            let due = network.filter { $0.at <= now }
            guard !due.isEmpty else { return }
            network.removeAll { $0.at <= now }
            for (_, message) in due.shuffled(using: &random) { try region.deliver(message) }
        }
    }

    /// Moves what the nodes sent into the network, deciding each message's fate.
    private func schedule() {
        for message in region.inFlight {
            if let sides, sides[message.from] != sides[message.to] { continue }
            if chaos, chance(plan.dropProbability) { continue }
            network.append((now + delay(), message))
            if chaos, chance(plan.duplicateProbability) { network.append((now + delay(), message)) }
        }
        region.inFlight.removeAll()
    }

    private func delay() -> UInt64 { chance(0.5) ? 0 : UInt64.random(in: 1...3, using: &random) }

    private func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &random) < probability }

    // MARK: Acknowledgements

    private func applied(_ entry: LogEntry, on name: NodeName) {
        guard let proposal = proposals[entry.index], proposal.proposer == name else { return }
        proposals[entry.index] = nil
        // Acknowledged to the client only if its own entry is the one applied.
        guard entry.term == proposal.ticket.term, entry.payload == .command(proposal.data) else { return }
        acknowledgedIndexMax = max(acknowledgedIndexMax, entry.index)
        acknowledgedCount += 1
    }

    /// Every member of the region has applied through the last acknowledged
    /// proposal (and, by state machine safety, holds the same state there).
    private func converged() -> Bool {
        guard let leader = leaders.first else { return false }
        let members = region.node(leader).membership.members
        return members.allSatisfy { (region.states[$0]?.index ?? 0) >= acknowledgedIndexMax }
    }
}
