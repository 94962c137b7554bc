import Foundation

/// What memberlist's formulas (`util.go`: `suspicionTimeout`,
/// `retransmitLimit`) give for a cluster of `clusterSize` nodes with these
/// settings, and the detection and dissemination bounds built from them.
/// The simulator's tests hold the implementation to these; `domicile bench
/// gossip` prints them beside the measurements.
public struct MembershipBounds: Sendable {
    public let settings: MembershipSettings
    public let clusterSize: Int

    public init(settings: MembershipSettings, clusterSize: Int) {
        self.settings = settings
        self.clusterSize = clusterSize
    }

    /// suspicionMult · max(1, log10(n)) · probe interval.
    public var suspicionMinimumMilliseconds: Int64 { Suspicion.minimumTimeout(clusterSize: clusterSize, settings: settings) }

    /// suspicionMaxTimeoutMult · the minimum: the timeout with no confirmations.
    public var suspicionMaximumMilliseconds: Int64 {
        suspicionMinimumMilliseconds * Int64(settings.lifeguard ? settings.suspicionMaxTimeoutMultiplier : 1)
    }

    /// retransmitMult · ceil(log10(n + 1)): how often each node repeats a broadcast.
    public var retransmitLimit: Int {
        settings.retransmitMultiplier * Int(log10(Double(clusterSize + 1)).rounded(.up))
    }

    /// Gossip rounds for an update to reach the whole cluster: every node
    /// that has it sends it `retransmitLimit` times, so no node spreads it
    /// for longer than that many rounds.
    public var disseminationRounds: Int { retransmitLimit }

    public var disseminationMilliseconds: Int64 { Int64(disseminationRounds) * settings.gossipIntervalMilliseconds }

    /// Probe intervals until some member probes a failed node. Each of the
    /// n − 1 others probes one member per interval in a shuffled round, so
    /// the chance that nobody probes it in k intervals is about e^−k; five
    /// leaves less than 1%.
    public static let firstProbeIntervals: Int64 = 5

    /// Crash to "declared dead by every member": the first failed probe
    /// round, then the longest suspicion, then dissemination of the death.
    public var detectionMilliseconds: Int64 {
        (Self.firstProbeIntervals + 1) * settings.probeIntervalMilliseconds + suspicionMaximumMilliseconds + disseminationMilliseconds
    }
}
