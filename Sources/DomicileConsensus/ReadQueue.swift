import DomicileModel

/// A leader's linearizable reads (ReadIndex, Raft dissertation §6.4): each
/// read gets the commit index at its arrival, then waits until a quorum has
/// answered a heartbeat sent after it — proof that no newer leader existed
/// when the read arrived. A heartbeat round confirms every read before it.
struct ReadQueue: Sendable {
    struct PendingRead: Sendable {
        var requester: NodeName
        var context: UInt64
        /// The commit index at arrival; nil until the leader has committed
        /// an entry of its own term (before that its commit index may lag).
        var index: UInt64?
        /// The heartbeat round that confirms it; nil until one is sent.
        var round: UInt64?
    }

    var pending: [PendingRead] = []
    /// The last heartbeat round sent.
    var round: UInt64 = 0
    /// Per voter, the highest round it answered.
    var acknowledged: [NodeName: UInt64] = [:]
}

extension RaftNode {
    /// Asks for a read index; it arrives in a `Ready`'s `readStates` with
    /// `context`. A follower asks the leader. Reads in flight when the
    /// leader changes are dropped: the shell times them out and retries.
    public mutating func requestRead(context: UInt64) throws(RaftError) {
        switch role {
        case .leader:
            guard reads.pending.count < settings.pendingReadsMax else { throw .overloaded("too many reads wait") }
            enqueueRead(from: id, context: context)
        default:
            guard let leader else { throw .noLeader }
            send(to: leader, .readIndex(context: context))
        }
    }

    mutating func enqueueRead(from requester: NodeName, context: UInt64) {
        guard reads.pending.count < settings.pendingReadsMax else { return }
        let committedInTerm = log.term(at: log.committed) == term
        reads.pending.append(.init(requester: requester, context: context, index: committedInTerm ? log.committed : nil))
        if committedInTerm { startReadRound() }
    }

    mutating func releaseReadsAwaitingCommit() {
        guard reads.pending.contains(where: { $0.index == nil }) else { return }
        for position in reads.pending.indices where reads.pending[position].index == nil {
            reads.pending[position].index = log.committed
        }
        startReadRound()
    }

    private mutating func startReadRound() {
        reads.round += 1
        for position in reads.pending.indices where reads.pending[position].round == nil {
            reads.pending[position].round = reads.round
        }
        broadcastHeartbeat(readRound: reads.round)
        releaseConfirmedReads()
    }

    mutating func acknowledgeReadRound(_ round: UInt64, from voter: NodeName) {
        guard log.membership.voters.contains(voter), round <= reads.round else { return }
        reads.acknowledged[voter] = max(reads.acknowledged[voter] ?? 0, round)
        releaseConfirmedReads()
    }

    /// Hands out every read whose round a quorum has answered.
    private mutating func releaseConfirmedReads() {
        let voters = log.membership.voters
        var rounds = voters.filter { $0 != id }.map { reads.acknowledged[$0] ?? 0 }
        if voters.contains(id) { rounds.append(reads.round) }
        guard rounds.count >= log.membership.quorum else { return }
        let confirmed = rounds.sorted(by: >)[log.membership.quorum - 1]
        while let first = reads.pending.first, let round = first.round, round <= confirmed, let index = first.index {
            reads.pending.removeFirst()
            if first.requester == id {
                readStates.append(ReadState(context: first.context, index: index))
            } else {
                send(to: first.requester, .readIndexResponse(context: first.context, index: index))
            }
        }
    }
}
