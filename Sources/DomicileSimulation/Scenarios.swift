import DomicileGossip
import DomicileModel

/// Scenarios shared by the simulator's tests and `domicile bench gossip`.
public enum Scenarios {
    /// 100 nodes, `lossRate` packet loss, one node stalled 1.5 s out of every
    /// 3 s for two minutes: how many suspicions and deaths are recorded,
    /// across all observers, about nodes that never failed.
    public static func wrongfulVerdictsWithAStalledNode(settings: MembershipSettings, lossRate: Double,
                                                        seed: UInt64) -> (suspicions: Int, deaths: Int) {
        var configuration = ClusterSimulation.Configuration(nodeCount: 100, settings: settings, seed: seed)
        configuration.latency = { _, _ in .init(1, 10) }
        configuration.lossRate = lossRate
        let simulation = ClusterSimulation(configuration)
        let stalled = 13
        var suspicions = 0
        var deaths = 0
        simulation.onChange = { _, member, _ in
            guard member.name != ClusterSimulation.name(stalled) else { return }
            if member.status == .dead { deaths += 1 }
            if member.status == .suspect { suspicions += 1 }
        }
        var time: Int64 = 2_000
        while time < 122_000 {
            simulation.run(until: time)
            simulation.stall(stalled, forMilliseconds: 1_500)
            time += 3_000
        }
        simulation.run(until: 130_000)
        return (suspicions, deaths)
    }
}
