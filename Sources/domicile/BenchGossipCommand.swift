import DomicileGossip
import DomicileModel
import DomicileSimulation
import Foundation

/// `domicile bench gossip`: the membership protocol in the simulator, at
/// several cluster sizes, beside memberlist's formulas for the same settings.
struct BenchGossipCommand: Command {
    static let path = ["bench", "gossip"]
    static let summary = "simulate membership at 100-10000 nodes: detection, dissemination, bandwidth"
    static let help = """
        [--sizes 100,1000,10000] [--seed N] [--profile lan|wan]

        For each cluster size, in the deterministic simulator (LAN latency 1-10 ms, converged start):
          - crash a node and measure the time until the first node suspects it, the first declares
            it dead, and every node has declared it dead;
          - let a node leave and measure gossip rounds until 99% know;
          - measure bytes sent per node per second in steady state;
        and print memberlist's suspicion timeouts, retransmit limit and our detection bound for the
        same settings. Then, at 100 nodes with 10% and 30% loss and one repeatedly stalled node,
        count suspicions and deaths recorded about healthy nodes with Lifeguard on and off.
        Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let sizes = try (try arguments.option("sizes") ?? "100,1000,10000").split(separator: ",").map { text in
            guard let size = Int(text), (5...20_000).contains(size) else { throw CLIError.usage("--sizes: counts in 5...20000") }
            return size
        }
        let seed = UInt64(try arguments.option("seed") ?? "20261122") ?? 20261122
        let profile = try arguments.option("profile") ?? "lan"
        try arguments.finish()
        let settings: MembershipSettings
        switch profile {
        case "lan": settings = .lan
        case "wan": settings = .wan
        default: throw CLIError.usage("--profile is lan or wan")
        }
        Output.line("domicile bench gossip (simulated, profile \(profile), seed \(seed))")
        Output.line("probe \(settings.probeIntervalMilliseconds) ms / timeout \(settings.probeTimeoutMilliseconds) ms, "
                    + "suspicion ×\(settings.suspicionMultiplier) (max ×\(settings.suspicionMaxTimeoutMultiplier)), "
                    + "gossip \(settings.gossipIntervalMilliseconds) ms × \(settings.gossipFanout), retransmit ×\(settings.retransmitMultiplier)")
        Output.line("")
        Output.line("nodes   first suspect  first dead  dead by all  bound(ours)  susp.min/max (memberlist)  99% rounds  limit  bytes/node/s  wall")
        for size in sizes {
            let started = Date()
            let result = measure(size: size, settings: settings, seed: seed)
            let bounds = MembershipBounds(settings: settings, clusterSize: size)
            let line = String(size).leftPadded(5) + "   "
                + "\(result.firstSuspect) ms".leftPadded(12) + "  " + "\(result.firstDead) ms".leftPadded(10) + "  "
                + "\(result.allDead) ms".leftPadded(11) + "  " + "\(bounds.detectionMilliseconds) ms".leftPadded(11) + "  "
                + "\(bounds.suspicionMinimumMilliseconds)/\(bounds.suspicionMaximumMilliseconds) ms".leftPadded(25) + "  "
                + String(format: "%10.1f", result.rounds) + "  " + String(bounds.retransmitLimit).leftPadded(5) + "  "
                + String(format: "%12.0f", result.bytesPerNodePerSecond) + "  " + String(format: "%4.0fs", Date().timeIntervalSince(started))
            Output.line(line)
        }
        Output.line("")
        Output.line("100 nodes, one node stalled 1.5 s in every 3 s for 2 min: wrongful verdicts about healthy nodes")
        Output.line("loss   lifeguard   suspicions   deaths")
        for loss in [0.10, 0.30] {
            for lifeguard in [true, false] {
                var variant = settings
                variant.lifeguard = lifeguard
                let verdicts = Scenarios.wrongfulVerdictsWithAStalledNode(settings: variant, lossRate: loss, seed: seed)
                Output.line(String(format: "%3.0f%%", loss * 100) + "   " + (lifeguard ? "on " : "off").padding(toLength: 9, withPad: " ", startingAt: 0)
                            + String(verdicts.suspicions).leftPadded(12) + String(verdicts.deaths).leftPadded(9))
            }
        }
    }

    struct Result {
        var firstSuspect: Int64 = -1
        var firstDead: Int64 = -1
        var allDead: Int64 = -1
        var rounds = 0.0
        var bytesPerNodePerSecond = 0.0
    }

    static func measure(size: Int, settings: MembershipSettings, seed: UInt64) -> Result {
        var configuration = ClusterSimulation.Configuration(nodeCount: size, settings: settings, seed: seed)
        configuration.latency = { _, _ in .init(1, 10) }
        let simulation = ClusterSimulation(configuration)
        var result = Result()
        // Steady state: bytes over 10 s once the start-up broadcasts have drained.
        simulation.run(until: 5_000)
        let bytesBefore = simulation.statistics.bytesSent
        simulation.run(until: 15_000)
        result.bytesPerNodePerSecond = Double(simulation.statistics.bytesSent - bytesBefore) / Double(size) / 10

        let victim = size / 2
        let crashedAt = simulation.now
        simulation.crash(victim)
        var dead = Set<Int>()
        simulation.onChange = { observer, member, time in
            guard member.name == ClusterSimulation.name(victim) else { return }
            if member.status == .suspect && result.firstSuspect < 0 { result.firstSuspect = time - crashedAt }
            if member.status == .dead {
                if result.firstDead < 0 { result.firstDead = time - crashedAt }
                dead.insert(observer)
            }
        }
        let limit = crashedAt + 4 * MembershipBounds(settings: settings, clusterSize: size).detectionMilliseconds
        if simulation.run(until: limit, stoppingWhen: { dead.count == size - 1 }) { result.allDead = simulation.now - crashedAt }

        let leaver = (size / 2 + 1) % size
        var informed = Set<Int>()
        simulation.onChange = { observer, member, _ in
            if member.name == ClusterSimulation.name(leaver) && member.status == .left { informed.insert(observer) }
        }
        let leftAt = simulation.now
        simulation.leave(leaver)
        let target = Int((Double(size - 2) * 0.99).rounded(.up))
        if simulation.run(until: leftAt + 60_000, stoppingWhen: { informed.count >= target }) {
            result.rounds = Double(simulation.now - leftAt) / Double(settings.gossipIntervalMilliseconds)
        }
        return result
    }
}
