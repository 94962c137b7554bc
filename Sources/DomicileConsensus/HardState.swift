import DomicileModel

/// What a node must keep across a crash besides its log: the latest term it
/// has seen, whom it voted for in that term, and how far it knows the log is
/// committed.
public struct HardState: Hashable, Sendable {
    public var term: UInt64
    public var vote: NodeName?
    public var commit: UInt64

    public init(term: UInt64 = 0, vote: NodeName? = nil, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}
