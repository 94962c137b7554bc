/// Where a proposal landed. It is committed when an entry with this index and
/// term is applied; an entry of another term at that index means it was lost
/// with its leader, and the client may retry.
public struct ProposalTicket: Hashable, Sendable {
    public var index: UInt64
    public var term: UInt64
}
