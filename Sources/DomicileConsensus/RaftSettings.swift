/// The region log's timing and limits. Time is counted in ticks: the shell
/// calls `tick()` at a fixed interval (the node: every 100 ms on a LAN), so
/// the machine has no clock of its own.
public struct RaftSettings: Hashable, Sendable {
    /// A follower that hears from no leader for this many ticks (randomized
    /// per election in `[electionTicks, 2 × electionTicks)`, so that two
    /// followers rarely time out together) starts an election. It must be
    /// well above `heartbeatTicks`, or a follower times out between two
    /// heartbeats. Also the leader's lease: a follower that heard from a
    /// leader less than this ago ignores votes, and a leader that heard from
    /// no quorum for this long steps down.
    public var electionTicks: Int = 10
    /// A leader sends heartbeats every this many ticks.
    public var heartbeatTicks: Int = 1
    /// Ask for votes without raising the term first, so that a node that was
    /// cut off and rejoins cannot depose a working leader.
    public var preVote = true
    /// A leader steps down when it has not heard from a quorum for an
    /// election timeout, so a leader cut off from the majority stops acting.
    public var checkQuorum = true
    /// Bounds of one append message: at most this many entries and (beyond
    /// the first entry, which always goes) this many bytes.
    public var appendEntriesCountMax = 64
    public var appendBytesMax = 1 << 20
    /// Appends in flight to one follower before the leader waits for
    /// acknowledgements (pipelining window).
    public var inflightAppendsMax = 64
    /// A proposal larger than this is refused.
    public var entryBytesMax = 8 << 20
    /// Proposals are refused while this many entries are uncommitted.
    public var uncommittedEntriesCountMax = 4096
    /// Committed entries handed to the shell per `Ready`.
    public var readyCommittedEntriesCountMax = 1024
    /// Linearizable reads waiting on the leader.
    public var pendingReadsMax = 4096

    /// A deliberately broken commit rule, for one test only: commit the
    /// highest index a quorum holds whatever its term, the classic bug of
    /// Raft's Figure 8. The simulator's test turns it on to show that the
    /// safety checker catches it (`RegionLogSimulationTests`). Internal, so
    /// nothing outside this module — no configuration, no caller of the
    /// public API — can turn it on; only a `@testable import` can.
    var unsafeCommitByCountingAnyTerm = false

    public init() {}

    /// Small, quick settings for the simulator and tests.
    public static let testing: RaftSettings = {
        var settings = RaftSettings()
        settings.electionTicks = 10
        settings.heartbeatTicks = 2
        settings.appendEntriesCountMax = 4
        settings.appendBytesMax = 256
        settings.inflightAppendsMax = 4
        return settings
    }()

    public func validate() throws(RaftError) {
        guard heartbeatTicks >= 1 else { throw .invalidSettings("heartbeatTicks must be at least 1") }
        guard electionTicks > heartbeatTicks else { throw .invalidSettings("electionTicks must exceed heartbeatTicks") }
        guard appendEntriesCountMax >= 1, appendBytesMax >= 1, inflightAppendsMax >= 1 else {
            throw .invalidSettings("append limits must be at least 1")
        }
        guard entryBytesMax >= 1, entryBytesMax <= RaftCodec.entryBytesMax else {
            throw .invalidSettings("entryBytesMax must be between 1 and \(RaftCodec.entryBytesMax)")
        }
        guard uncommittedEntriesCountMax >= 1, readyCommittedEntriesCountMax >= 1, pendingReadsMax >= 1 else {
            throw .invalidSettings("queue limits must be at least 1")
        }
    }
}
