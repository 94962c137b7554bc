import DomicileModel

/// A message between two nodes of a region log. Every message carries the
/// sender's term; the machine's first rule compares it with its own.
public struct RaftMessage: Hashable, Sendable {
    public var from: NodeName
    public var to: NodeName
    public var term: UInt64
    public var body: Body

    public init(from: NodeName, to: NodeName, term: UInt64, body: Body) {
        self.from = from
        self.to = to
        self.term = term
        self.body = body
    }

    public enum Body: Hashable, Sendable {
        /// "Would you vote for me in `term`?", asked before raising the term.
        case preVote(lastIndex: UInt64, lastTerm: UInt64)
        case preVoteResponse(granted: Bool)
        /// `transfer` marks an election the leader asked for (TimeoutNow),
        /// which followers hold no lease against.
        case vote(lastIndex: UInt64, lastTerm: UInt64, transfer: Bool)
        case voteResponse(granted: Bool)
        case append(prevIndex: UInt64, prevTerm: UInt64, entries: [LogEntry], commit: UInt64)
        /// Accepted: the follower's log matches through `index`. Rejected:
        /// `index` is the refused `prevIndex` and `hint` the last index that
        /// may still match.
        case appendResponse(index: UInt64, rejected: Bool, hint: UInt64)
        /// `readRound` > 0 asks the follower to confirm the leadership for
        /// the reads of that round (ReadIndex).
        case heartbeat(commit: UInt64, readRound: UInt64)
        case heartbeatResponse(readRound: UInt64)
        case snapshot(Snapshot)
        /// "Start an election now": the last step of a leadership transfer.
        case timeoutNow
        /// A follower asks the leader for a read index on behalf of a read
        /// it serves; `context` is the follower's own id for the read.
        case readIndex(context: UInt64)
        case readIndexResponse(context: UInt64, index: UInt64)
    }

    /// Wire type numbers (docs/FORMATS.md, "Region log message"). Append-only:
    /// never renumber or reuse a value.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case preVote = 1, preVoteResponse, vote, voteResponse, append, appendResponse,
             heartbeat, heartbeatResponse, snapshot, timeoutNow, readIndex, readIndexResponse
    }

    public var kind: Kind {
        switch body {
        case .preVote: return .preVote
        case .preVoteResponse: return .preVoteResponse
        case .vote: return .vote
        case .voteResponse: return .voteResponse
        case .append: return .append
        case .appendResponse: return .appendResponse
        case .heartbeat: return .heartbeat
        case .heartbeatResponse: return .heartbeatResponse
        case .snapshot: return .snapshot
        case .timeoutNow: return .timeoutNow
        case .readIndex: return .readIndex
        case .readIndexResponse: return .readIndexResponse
        }
    }
}
