import DomicileModel

/// One node's Raft, as a value with no I/O (in the manner of etcd-io/raft).
///
/// Events go in — `tick()`, `step(_:)`, `propose(_:)`, reads, transfers and
/// membership changes — and change the state; `ready()` then collects what
/// the shell must do (persist, then send, then apply: see `Ready`), and
/// `advance(_:)` tells the machine it was done. Randomness (the election
/// timeouts) comes from a seed passed in, time from ticks. docs/CONSENSUS.md.
public struct RaftNode: Sendable {
    public let id: NodeName
    let settings: RaftSettings
    var random: SeededRandom

    public internal(set) var role: RaftRole = .follower
    public internal(set) var term: UInt64
    public internal(set) var vote: NodeName?
    /// The leader of the current term, when known.
    public internal(set) var leader: NodeName?
    var log: RaftLog

    /// Ticks since the last election timeout reset (on a leader: since the
    /// last quorum check).
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTicks = 0
    /// Votes received in the current (pre-)election.
    var votes: [NodeName: Bool] = [:]
    /// Leader only: one per other member.
    var progress: [NodeName: Progress] = [:]
    /// Leader only: the voter a transfer is handing leadership to.
    var transferee: NodeName?
    var transferElapsed = 0
    /// Leader only: reads waiting for a confirmation of leadership.
    var reads = ReadQueue()

    var outbox: [RaftMessage] = []
    var readStates: [ReadState] = []
    /// The hard state on disk; nil before the first `Ready` of a new node.
    var persistedHardState: HardState?
    var awaitingAdvance = false

    /// A new node. Members of a new region all start with the same
    /// `membership`; a node joining a running region starts with
    /// `.empty` and learns it from the leader.
    public init(id: NodeName, membership: Membership, settings: RaftSettings, randomSeed: UInt64) throws(RaftError) {
        let base = Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, membership: membership), payload: [])
        try self.init(id: id, log: RaftLog(snapshot: base, entries: [], committed: 0, applied: 0, snapshotUnstable: true),
                      hardState: HardState(), persisted: nil, settings: settings, randomSeed: randomSeed)
    }

    /// A node restarted from its disk. `applied` is how far the shell's
    /// state has applied the log (at least the snapshot's index).
    public init(id: NodeName, restoring state: PersistedState, applied: UInt64? = nil,
                settings: RaftSettings, randomSeed: UInt64) throws(RaftError) {
        let snapshotIndex = state.snapshot.metadata.index
        for (offset, entry) in state.entries.enumerated() {
            guard entry.index == snapshotIndex + 1 + UInt64(offset) else { throw .corruptState("entries do not follow the snapshot") }
            guard entry.term <= state.hardState.term else { throw .corruptState("an entry's term is beyond the hard state's") }
        }
        let lastIndex = snapshotIndex + UInt64(state.entries.count)
        let applied = applied ?? snapshotIndex
        guard (snapshotIndex...lastIndex).contains(state.hardState.commit), (snapshotIndex...state.hardState.commit).contains(applied) else {
            throw .corruptState("commit or applied index outside the log")
        }
        let log = RaftLog(snapshot: state.snapshot, entries: state.entries, committed: state.hardState.commit, applied: applied,
                          snapshotUnstable: false)
        try self.init(id: id, log: log, hardState: state.hardState, persisted: state.hardState, settings: settings, randomSeed: randomSeed)
    }

    private init(id: NodeName, log: RaftLog, hardState: HardState, persisted: HardState?,
                 settings: RaftSettings, randomSeed: UInt64) throws(RaftError) {
        try settings.validate()
        self.id = id
        self.settings = settings
        self.random = SeededRandom(seed: randomSeed)
        self.log = log
        self.term = hardState.term
        self.vote = hardState.vote
        self.persistedHardState = persisted
        becomeFollower(term: hardState.term, leader: nil)
    }

    // MARK: What the shell may read

    public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    public var membership: Membership { log.membership }
    public var commitIndex: UInt64 { log.committed }
    public var appliedIndex: UInt64 { log.applied }
    public var lastIndex: UInt64 { log.lastIndex }
    public var firstIndex: UInt64 { log.firstIndex }
    /// The term of the entry at `index`, while the log still holds it.
    public func term(at index: UInt64) -> UInt64? { log.term(at: index) }
    /// Leader only: the highest index known to match each other member's log.
    public var matchIndexes: [NodeName: UInt64] { progress.mapValues(\.match) }

    var isVoter: Bool { log.membership.voters.contains(id) }

    // MARK: Events

    /// One unit of time has passed.
    public mutating func tick() {
        if role == .leader { tickLeader() } else { tickFollower() }
    }

    /// A message from a peer. Messages for another node, or from an older
    /// term, change nothing (an old leader is told the current term).
    public mutating func step(_ message: RaftMessage) {
        guard message.to == id, message.from != id else { return }
        guard acceptTerm(of: message) else { return }
        switch message.body {
        case .preVote(let lastIndex, let lastTerm):
            answerPreVote(message, lastIndex: lastIndex, lastTerm: lastTerm)
        case .vote(let lastIndex, let lastTerm, _):
            answerVote(message, lastIndex: lastIndex, lastTerm: lastTerm)
        case .preVoteResponse(let granted), .voteResponse(let granted):
            countVote(from: message.from, granted: granted, preVote: message.kind == .preVoteResponse)
        case .append(let prevIndex, let prevTerm, let entries, let commit):
            followLeader(message.from)
            handleAppend(from: message.from, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
        case .heartbeat(let commit, let readRound):
            followLeader(message.from)
            handleHeartbeat(from: message.from, commit: commit, readRound: readRound)
        case .snapshot(let snapshot):
            followLeader(message.from)
            handleSnapshot(from: message.from, snapshot)
        case .appendResponse(let index, let rejected, let hint):
            guard role == .leader else { return }
            handleAppendResponse(from: message.from, index: index, rejected: rejected, hint: hint)
        case .heartbeatResponse(let readRound):
            guard role == .leader else { return }
            handleHeartbeatResponse(from: message.from, readRound: readRound)
        case .timeoutNow:
            guard role != .leader, isVoter else { return }
            campaign(preVote: false, transfer: true)
        case .readIndex(let context):
            guard role == .leader else { return }
            enqueueRead(from: message.from, context: context)
        case .readIndexResponse(let context, let index):
            guard role == .follower else { return }
            readStates.append(ReadState(context: context, index: index))
        }
    }

    /// Starts an election now, as if the election timeout had passed (etcd's
    /// `MsgHup`): a shell calls it when its node is the region's only voter,
    /// so that a region of one node does not wait a timeout to serve.
    public mutating func campaign() {
        guard role != .leader, isVoter else { return }
        campaign(preVote: settings.preVote, transfer: false)
    }

    /// Appends the shell's command to the log (leader only).
    public mutating func propose(_ data: [UInt8]) throws(RaftError) -> ProposalTicket {
        guard data.count <= settings.entryBytesMax else { throw .entryTooLarge(bytes: data.count) }
        return try appendProposal(.command(data))
    }

    // MARK: Output

    /// Whether `ready()` has anything for the shell.
    public var hasReady: Bool {
        !outbox.isEmpty || !readStates.isEmpty || hardState != persistedHardState || log.pendingSnapshot != nil
            || log.stableIndex < log.lastIndex || log.committed > log.applied
    }

    /// What the shell must now persist, send and apply (see `Ready`). The
    /// shell calls `advance(_:)` before the next `ready()`.
    public mutating func ready() -> Ready {
        precondition(!awaitingAdvance, "ready() called again before advance()")
        awaitingAdvance = true
        defer { outbox = []; readStates = [] }
        return Ready(hardState: hardState == persistedHardState ? nil : hardState,
                     snapshot: log.pendingSnapshot,
                     entries: log.unstableEntries,
                     messages: outbox,
                     committedEntries: log.entriesToApply(countMax: settings.readyCommittedEntriesCountMax),
                     readStates: readStates)
    }

    /// The shell has persisted, sent and applied `ready`.
    public mutating func advance(_ ready: Ready) {
        precondition(awaitingAdvance, "advance() without ready()")
        awaitingAdvance = false
        if let hardState = ready.hardState { persistedHardState = hardState }
        if let snapshot = ready.snapshot { log.snapshotPersisted(index: snapshot.metadata.index) }
        if let last = ready.entries.last { log.stable(through: last.index, term: last.term) }
        if let last = ready.committedEntries.last { log.applied = max(log.applied, last.index) }
        if role == .leader { leaderPersisted() }
    }

    /// The shell has taken a snapshot of its applied state through `index`
    /// and stored it (`payload` is its own: the state or a reference to it);
    /// the machine forgets the entries it covers and sends this snapshot to
    /// followers too far behind. The shell stores the returned snapshot and
    /// deletes its entries through `index`.
    public mutating func compact(through index: UInt64, payload: [UInt8]) throws(RaftError) -> Snapshot {
        guard index > log.snapshotIndex else { throw .invalidCompaction("already compacted through \(log.snapshotIndex)") }
        guard index <= log.applied, index <= log.stableIndex else { throw .invalidCompaction("index \(index) is not applied and persisted") }
        return log.compact(through: index, payload: payload)
    }

    // MARK: Helpers shared by the extensions

    mutating func send(to peer: NodeName, _ body: RaftMessage.Body, term messageTerm: UInt64? = nil) {
        outbox.append(RaftMessage(from: id, to: peer, term: messageTerm ?? term, body: body))
    }

    mutating func resetRandomizedElectionTicks() {
        randomizedElectionTicks = settings.electionTicks + Int.random(in: 0..<settings.electionTicks, using: &random)
    }
}
