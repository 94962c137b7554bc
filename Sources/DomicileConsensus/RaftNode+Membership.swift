import DomicileModel

/// Membership changes and leadership transfer.
extension RaftNode {
    /// Proposes one membership change (leader only). It takes effect on each
    /// node as soon as the entry is appended there; the next change waits
    /// until this one commits, and the first waits for the leader to commit
    /// an entry of its own term (the single-server change rule of Raft's
    /// dissertation, with its known fix).
    public mutating func proposeMembershipChange(_ change: MembershipChange) throws(RaftError) -> ProposalTicket {
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard !log.hasPendingMembership, log.term(at: log.committed) == term else { throw .membershipChangePending }
        if case .remove(let node) = change, node == id {
            throw .invalidMembership("the leader cannot remove itself; transfer the leadership first")
        }
        let next = try log.membership.applying(change)
        return try appendProposal(.membership(next))
    }

    /// Hands the leadership to `target`, a voter: the leader stops taking
    /// proposals, brings the target's log up to date, then tells it to start
    /// an election at once. Abandoned after an election timeout.
    public mutating func transferLeadership(to target: NodeName) throws(RaftError) {
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard target != id, log.membership.voters.contains(target) else {
            throw .invalidMembership("\(target) is not another voter")
        }
        guard transferee != target else { return }
        transferee = target
        transferElapsed = 0
        if progress[target]?.match == log.lastIndex {
            send(to: target, .timeoutNow)
        } else {
            sendAppend(to: target, allowEmpty: true)
        }
    }

    mutating func tickTransfer() {
        guard transferee != nil else { return }
        transferElapsed += 1
        if transferElapsed >= settings.electionTicks { transferee = nil }
    }
}
