import DomicileConsensus
import DomicileModel

/// One seeded run of a region under a nemesis: a network that drops, delays,
/// reorders and duplicates messages and partitions the nodes; crashes —
/// between steps, and inside the shell's handling of a `Ready` (before its
/// write is synced, which then survives whole or is lost whole; before it
/// sends; before or while it applies; before it advances) — and restarts
/// from the simulated disks alone; compactions, leadership transfers,
/// linearizable reads and, when asked, membership changes. One step is one
/// unit of the simulated clock: each node up ticks once (under the nemesis,
/// a node sometimes misses a tick, as a paused process does). Safety is
/// checked after every step (`RegionLogSafety`); at the end the nemesis
/// stops, everything heals, and every acknowledged proposal must be applied
/// by every member. Everything is drawn from `seed`, so a failing run
/// replays exactly (`domicile simulate region-log --seed`).
public final class RegionLogSimulation {
    public struct Plan: Sendable {
        public var voters = 3
        /// Spare nodes added as learners, promoted, and voters removed.
        public var membershipChanges = false
        /// The machine's settings (each run then turns pre-vote and
        /// check-quorum on or off from its seed).
        public var settings = RaftSettings.testing
        /// Time units (one tick each) under the nemesis, then to heal.
        public var chaosTime = 300
        public var healTimeMax = 600
        public var dropProbability = 0.05
        public var duplicateProbability = 0.02
        public var crashProbability = 0.01
        /// Per `Ready`: a crash inside the shell's loop (`ShellCrashPoint`).
        public var shellCrashProbability = 0.005
        public var restartProbability = 0.05
        public var partitionProbability = 0.01
        public var healProbability = 0.04
        public var proposeProbability = 0.4
        public var readProbability = 0.05
        public var compactProbability = 0.02
        public var transferProbability = 0.004
        public var membershipChangeProbability = 0.01

        public init() {}
    }

    /// What a run did, and the property it broke if any.
    public struct Outcome: Sendable {
        public var seed: UInt64
        public var voters: Int
        public var preVote: Bool
        public var checkQuorum: Bool
        /// Time units run (nemesis and healing).
        public var steps = 0
        /// Terms that had a leader.
        public var elections = 0
        /// The highest index any node applied, and the proposals acknowledged to clients.
        public var committedIndex: UInt64 = 0
        public var acknowledged = 0
        public var crashes = 0
        /// Of which inside the shell's handling of a `Ready`.
        public var shellCrashes = 0
        public var restarts = 0
        public var partitions = 0
        public var messagesSent = 0
        public var messagesDropped = 0
        public var violation: RegionLogViolation?
    }

    public let seed: UInt64
    public let plan: Plan
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
    private var acknowledgedIndexMax: UInt64 = 0
    private var outcome: Outcome

    public init(seed: UInt64, plan: Plan) throws {
        self.seed = seed
        self.plan = plan
        random = SeededRandom(seed: seed)
        // Half the runs without pre-vote, half without check-quorum (which
        // also acts as the leader's lease): more elections, more old leaders.
        var settings = plan.settings
        settings.preVote = Bool.random(using: &random)
        settings.checkQuorum = Bool.random(using: &random)
        let voters = try (1...plan.voters).map { try NodeName("n\($0)") }
        outcome = Outcome(seed: seed, voters: plan.voters, preVote: settings.preVote, checkQuorum: settings.checkQuorum)
        region = try SimulatedRegion(voters: voters, settings: settings, seed: seed)
        region.recordsApplied = false
        if plan.membershipChanges { spares = [try NodeName("s1"), try NodeName("s2")] }
        region.onApply = { [unowned self] name, entry in self.applied(entry, on: name) }
        region.crashPoint = { [unowned self] name in self.shellCrash(name) }
    }

    /// Runs the nemesis, then heals and waits for every member to apply
    /// everything acknowledged. Stops at the first broken property.
    public func run() -> Outcome {
        do {
            try runChecked()
        } catch let violation as RegionLogViolation {
            outcome.violation = violation
        } catch {
            outcome.violation = RegionLogViolation(.shellContract, "\(error)")
        }
        outcome.elections = region.checker.electionsWon
        outcome.committedIndex = region.checker.highestCommitted
        outcome.crashes = region.crashCount
        outcome.shellCrashes = region.shellCrashCount
        outcome.restarts = region.restartCount
        return outcome
    }

    private func runChecked() throws {
        for _ in 0..<plan.chaosTime { try step() }
        chaos = false
        sides = nil
        for name in region.names where region.nodes[name] == nil { try region.restart(name, seed: random.next()) }
        for _ in 0..<plan.healTimeMax {
            try step()
            if converged() { return }
        }
        throw RegionLogViolation(.acknowledgedApplied, "after healing, the members did not all apply through \(acknowledgedIndexMax): "
            + region.names.map { "\($0)@\(region.state(of: $0)?.index ?? 0)" }.joined(separator: " "))
    }

    // MARK: One time unit

    private func step() throws {
        now += 1
        outcome.steps += 1
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
            outcome.partitions += 1
        } else if sides != nil, chance(plan.healProbability) {
            sides = nil
        }
        for name in region.live {
            let node = region.node(name)
            if chance(plan.compactProbability), let state = region.state(of: name), state.index > node.firstIndex + 4,
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
        outcome.messagesSent += region.inFlight.count
        for message in region.inFlight {
            if let sides, sides[message.from] != sides[message.to] {
                outcome.messagesDropped += 1
                continue
            }
            if chaos, chance(plan.dropProbability) {
                outcome.messagesDropped += 1
                continue
            }
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
        outcome.acknowledged += 1
    }

    // MARK: Crashes inside the shell

    /// Where, if anywhere, `name` crashes while handling its next `Ready`.
    private func shellCrash(_ name: NodeName) -> ShellCrashPoint? {
        guard chaos, chance(plan.shellCrashProbability) else { return nil }
        switch Int.random(in: 0..<5, using: &random) {
        case 0: return .beforeSync(survives: chance(0.5))
        case 1: return .beforeSend
        case 2: return .beforeApply
        case 3: return .whileApplying(transactions: Int.random(in: 0...2, using: &random))
        default: return .beforeAdvance
        }
    }

    /// Every member of the region has applied through the last acknowledged
    /// proposal (and, by state machine safety, holds the same state there).
    private func converged() -> Bool {
        guard let leader = leaders.first else { return false }
        let members = region.node(leader).membership.members
        return members.allSatisfy { (region.state(of: $0)?.index ?? 0) >= acknowledgedIndexMax }
    }
}
