import Foundation

/// The faults of a Jepsen-style run against a region's nodes: kills,
/// pauses and partitions, each after a quiet spell, with a wait for a
/// leader between them. Every fault is recorded in the client's history.
public struct Nemesis: Sendable {
    public enum Fault: String, CaseIterable, Sendable {
        case killLeader = "SIGKILL the leader, restart it"
        case killFollower = "SIGKILL a follower, restart it"
        case pauseLeader = "SIGSTOP the leader past the election timeout, SIGCONT"
        case partition = "cut one node off from the other two, heal"
        case killAll = "SIGKILL every node at once, restart them"
    }

    public let client: RegionClient
    /// Where partitions are possible; without it, `partition` is skipped.
    public let network: NamespaceNetwork?
    /// How long after a cut the cut-off node is asked `/readyz` (past the checker's grace).
    public var probeAfter = 3.2

    public init(client: RegionClient, network: NamespaceNetwork?) {
        self.client = client
        self.network = network
    }

    /// Faults by case name (`killLeader,pauseLeader`), for a run aimed at one of them.
    public static func named(_ list: String) -> [Fault] {
        list.split(separator: ",").compactMap { name in Fault.allCases.first { "\($0)" == name.trimmingCharacters(in: .whitespaces) } }
    }

    /// Each fault once per round, each round in its own order.
    public static func rounds(_ count: Int, partitions: Bool, using random: inout some RandomNumberGenerator) -> [Fault] {
        let faults: [Fault] = [.killLeader, .killFollower, .pauseLeader, .killAll] + (partitions ? [.partition] : [])
        return (0..<max(count, 1)).flatMap { _ in faults.shuffled(using: &random) }
    }

    /// Applies `faults` in order; the victims and durations are drawn from `random`.
    public func run(_ faults: [Fault], random: inout some RandomNumberGenerator) async throws {
        try await sleep(draw(2, 3, &random))
        for fault in faults {
            let nodes = client.nodes
            let leader = nodes.names.count == 1 ? nodes.names[0] : await client.leader()
            guard let leader else {
                client.history.record(.note, "-", "no leader before \(fault.rawValue)")
                continue
            }
            let followers = nodes.names.filter { $0 != leader }
            switch fault {
            case .killLeader:
                try await killAndRestart([leader], "leader", downFor: draw(1, 2, &random))
            case .killFollower:
                try await killAndRestart([followers[Int(random.next() % UInt64(followers.count))]], "follower", downFor: draw(1, 2, &random))
            case .killAll:
                // What a majority acknowledged was durable on that majority: a whole-region crash loses none of it.
                try await killAndRestart(nodes.names, "all", downFor: draw(0.5, 1.5, &random))
            case .pauseLeader:
                nodes.pause(leader)
                client.history.record(.pause, leader, "leader")
                try await sleep(draw(4, 5, &random))
                nodes.resume(leader)
                client.history.record(.resume, leader)
            case .partition:
                let victim = random.next() % 2 == 0 ? leader : followers[Int(random.next() % UInt64(followers.count))]
                try await cutOff(victim, role: victim == leader ? "leader" : "follower")
            }
            if nodes.names.count > 1, await client.leader(seconds: 20) == nil {
                client.history.record(.note, "-", "no leader 20 s after \(fault.rawValue)")
            }
            try await sleep(draw(2, 3, &random))
        }
    }

    private func killAndRestart(_ victims: [String], _ role: String, downFor seconds: Double) async throws {
        for victim in victims {
            client.nodes.kill(victim)
            client.history.record(.kill, victim, role)
        }
        try await sleep(seconds)
        for victim in victims {
            try client.nodes.start(victim)
            client.history.record(.restart, victim)
        }
    }

    /// Cuts `victim` off for about 7 s; past the checker's grace, asks it whether it is ready.
    private func cutOff(_ victim: String, role: String) async throws {
        guard let network else { return }
        let index = client.nodes.index(of: victim)
        try network.partition(index)
        client.history.record(.partition, victim, role)
        try await sleep(probeAfter)
        for _ in 0..<8 {
            await client.perform(.readiness, client: "nemesis", node: victim)
            try await sleep(0.5)
        }
        try network.heal(index)
        client.history.record(.heal, victim)
    }

    private func sleep(_ seconds: Double) async throws { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }

    private func draw(_ low: Double, _ high: Double, _ random: inout some RandomNumberGenerator) -> Double {
        low + (high - low) * Double(random.next() % 1_000) / 1_000
    }
}
