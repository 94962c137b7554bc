/// Timings and limits of one membership pool (in the manner of
/// hashicorp/memberlist's `config.go`). Times are milliseconds.
public struct MembershipSettings: Sendable, Equatable {
    /// A member probes one other member per interval (scaled by its local
    /// health multiplier, Lifeguard). Shorter detects failures sooner and
    /// costs more packets: each node sends about 2/interval packets for probes.
    public var probeIntervalMilliseconds: Int64
    /// How long a direct probe waits for an ack before asking others to probe
    /// indirectly (also scaled by local health). Above the network's RTT.
    public var probeTimeoutMilliseconds: Int64
    /// Members asked to probe indirectly when a direct probe times out (k).
    public var indirectChecks: Int
    /// Suspicion timeout = multiplier · max(1, log10(n)) · probe interval,
    /// the minimum once enough peers confirm; more tolerant of slow links
    /// as it grows, slower to declare the dead.
    public var suspicionMultiplier: Int
    /// The timeout starts at this multiple of the minimum and falls toward the
    /// minimum with each independent confirmation (Lifeguard).
    public var suspicionMaxTimeoutMultiplier: Int
    /// A broadcast is retransmitted multiplier · ceil(log10(n + 1)) times.
    public var retransmitMultiplier: Int
    /// Gossip rounds: queued broadcasts go to `gossipFanout` random members
    /// every interval.
    public var gossipIntervalMilliseconds: Int64
    public var gossipFanout: Int
    /// Full state exchange over TCP with one random member.
    public var pushPullIntervalMilliseconds: Int64
    /// Push-pull with a member this node does not believe alive (a seed, or
    /// a dead member still remembered), so a healed partition heals membership.
    public var rejoinIntervalMilliseconds: Int64
    /// Dead and left members are dropped from the member list after this long.
    public var deadMemberRetentionMilliseconds: Int64
    /// Addresses of peers seen are remembered this long for rejoining.
    public var peerMemoryMilliseconds: Int64
    /// Lifeguard local health multiplier: 0 (healthy) … awarenessMax − 1.
    /// 1 turns the local health multiplier off.
    public var awarenessMax: Int
    /// Lifeguard as a whole: local health, dynamic suspicion with
    /// confirmations, buddy system, nacks. Off only to measure its effect.
    public var lifeguard: Bool
    /// Largest UDP payload (the encrypted packet), bytes.
    public var packetBytesMax: Int
    /// Largest push-pull state, members.
    public var pushPullMembersMax: Int

    /// Within a region (memberlist's LAN profile, with DESIGN.md's timings).
    public static let lan = MembershipSettings(
        probeIntervalMilliseconds: 1_000, probeTimeoutMilliseconds: 500, indirectChecks: 3, suspicionMultiplier: 4,
        suspicionMaxTimeoutMultiplier: 6, retransmitMultiplier: 4, gossipIntervalMilliseconds: 200, gossipFanout: 3,
        pushPullIntervalMilliseconds: 30_000, rejoinIntervalMilliseconds: 30_000, deadMemberRetentionMilliseconds: 30_000,
        peerMemoryMilliseconds: 24 * 3_600_000, awarenessMax: 8, lifeguard: true, packetBytesMax: 1_400, pushPullMembersMax: 4_096)

    /// Across regions (memberlist's WAN profile, with DESIGN.md's timings).
    public static let wan = MembershipSettings(
        probeIntervalMilliseconds: 5_000, probeTimeoutMilliseconds: 3_000, indirectChecks: 3, suspicionMultiplier: 6,
        suspicionMaxTimeoutMultiplier: 6, retransmitMultiplier: 4, gossipIntervalMilliseconds: 500, gossipFanout: 4,
        pushPullIntervalMilliseconds: 60_000, rejoinIntervalMilliseconds: 60_000, deadMemberRetentionMilliseconds: 60_000,
        peerMemoryMilliseconds: 24 * 3_600_000, awarenessMax: 8, lifeguard: true, packetBytesMax: 1_400, pushPullMembersMax: 4_096)

    /// Fast, for local clusters and tests on one machine.
    public static let loopback = MembershipSettings(
        probeIntervalMilliseconds: 200, probeTimeoutMilliseconds: 100, indirectChecks: 3, suspicionMultiplier: 3,
        suspicionMaxTimeoutMultiplier: 4, retransmitMultiplier: 4, gossipIntervalMilliseconds: 100, gossipFanout: 3,
        pushPullIntervalMilliseconds: 2_000, rejoinIntervalMilliseconds: 1_000, deadMemberRetentionMilliseconds: 15_000,
        peerMemoryMilliseconds: 3_600_000, awarenessMax: 8, lifeguard: true, packetBytesMax: 1_400, pushPullMembersMax: 4_096)

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public func validated() throws(Invalid) -> MembershipSettings {
        func require(_ condition: Bool, _ message: String) throws(Invalid) {
            if !condition { throw Invalid(description: "membership settings: \(message)") }
        }
        try require(probeIntervalMilliseconds >= 10, "probe interval must be at least 10 ms")
        try require(probeTimeoutMilliseconds >= 1 && probeTimeoutMilliseconds < probeIntervalMilliseconds,
                    "probe timeout must be positive and shorter than the probe interval")
        try require(indirectChecks >= 0 && indirectChecks <= 16, "indirect checks must be 0-16")
        try require(suspicionMultiplier >= 1 && suspicionMaxTimeoutMultiplier >= 1, "suspicion multipliers must be at least 1")
        try require(retransmitMultiplier >= 1 && gossipFanout >= 1, "retransmit multiplier and gossip fanout must be at least 1")
        try require(gossipIntervalMilliseconds >= 10 && pushPullIntervalMilliseconds >= 100 && rejoinIntervalMilliseconds >= 100,
                    "gossip, push-pull and rejoin intervals are too short")
        try require(awarenessMax >= 1 && awarenessMax <= 64, "awareness max must be 1-64")
        try require(packetBytesMax >= 256 && packetBytesMax <= 65_000, "packet size must be 256-65000 bytes")
        return self
    }
}
