import DomicileGossip

extension GossipService.Settings {
    init(_ configuration: NodeConfiguration.Gossip) throws {
        var region: MembershipSettings
        var federation: MembershipSettings
        switch configuration.profile {
        case .standard: (region, federation) = (.lan, .wan)
        case .loopback: (region, federation) = (.loopback, .loopback)
        }
        for index in 0..<2 {
            var settings = index == 0 ? region : federation
            if let interval = configuration.probeIntervalMilliseconds { settings.probeIntervalMilliseconds = interval }
            if let timeout = configuration.probeTimeoutMilliseconds { settings.probeTimeoutMilliseconds = timeout }
            settings = try settings.validated()
            if index == 0 { region = settings } else { federation = settings }
        }
        self.init(region: region, federation: federation)
    }
}

/// Membership in Prometheus text: members by pool and status, packets,
/// drops by reason, push-pulls.
enum GossipMetrics {
    static func render(_ gossip: GossipService) -> String {
        var lines = ["# HELP domicile_members Members known, by pool and status (this node included).",
                     "# TYPE domicile_members gauge"]
        for pool in Pool.allCases {
            let counts = gossip.counts(of: pool)
            for status in MemberStatus.allCases {
                lines.append(#"domicile_members{pool="\#(pool)",status="\#(status)"} \#(counts[status] ?? 0)"#)
            }
        }
        let counters = gossip.counters.value
        lines += ["# TYPE domicile_gossip_packets_sent_total counter", "domicile_gossip_packets_sent_total \(counters.packetsSent)",
                  "# TYPE domicile_gossip_packets_received_total counter",
                  "domicile_gossip_packets_received_total \(counters.packetsReceived)",
                  "# HELP domicile_gossip_packets_dropped_total Packets dropped unread: undecryptable, malformed, wrong version or pool.",
                  "# TYPE domicile_gossip_packets_dropped_total counter"]
        for (reason, count) in counters.packetsDropped.sorted(by: { $0.key < $1.key }) {
            lines.append(#"domicile_gossip_packets_dropped_total{reason="\#(reason)"} \#(count)"#)
        }
        lines += ["# TYPE domicile_gossip_push_pulls_total counter", "domicile_gossip_push_pulls_total \(counters.pushPulls)",
                  "# TYPE domicile_gossip_push_pull_failures_total counter",
                  "domicile_gossip_push_pull_failures_total \(counters.pushPullFailures)"]
        return lines.joined(separator: "\n") + "\n"
    }
}
