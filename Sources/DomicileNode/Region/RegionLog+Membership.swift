import DomicileConsensus
import DomicileModel
import DomicileNet

/// Adding and removing a node of a running region (`domicile cluster
/// add-node`, `remove-node`; docs/REGION_LOG.md, "Membership"). A node is
/// added as a learner, which receives the log (or a snapshot) without
/// voting; once it has caught up with the leader it is promoted to voter.
/// One change at a time, on the leader.
extension RegionLog {
    struct MembershipRefused: Error, CustomStringConvertible {
        let description: String
    }

    /// Adds `node` (listed in the roster, started with `region_log.join`)
    /// and promotes it once caught up, within `timeoutMilliseconds`.
    func add(_ node: NodeName, timeoutMilliseconds: Int64) async throws {
        guard roster(node) != nil else {
            throw MembershipRefused(description: "the roster does not list \(node): add it with `domicile cluster add-node` first")
        }
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        var status = self.status
        if !status.voters.contains(node) && !status.learners.contains(node) {
            try await settle(.change(.addLearner(node)), until: deadline)
        }
        // Caught up: the learner holds what the leader had committed when it was added.
        let target = self.status.commitIndex
        while (self.status.matchIndexes[node] ?? 0) < target {
            guard monotonicMilliseconds() < deadline, isServingLeader else {
                throw MembershipRefused(description: "\(node) did not catch up in time (is it running with region_log.join?); "
                                        + "it stays a learner and may be promoted later")
            }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        status = self.status
        if !status.voters.contains(node) { try await settle(.change(.promote(node)), until: deadline) }
    }

    /// Removes `node`. The leader does not remove itself: it hands the
    /// leadership to another voter and refuses, so the caller asks again.
    func remove(_ node: NodeName, timeoutMilliseconds: Int64) async throws {
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        let status = self.status
        guard status.voters.contains(node) || status.learners.contains(node) else { return }
        if node == name {
            guard let other = status.voters.filter({ $0 != name }).max(by: { (status.matchIndexes[$0] ?? 0) < (status.matchIndexes[$1] ?? 0) }) else {
                throw MembershipRefused(description: "a region keeps at least one voter")
            }
            try await settle(.transfer(to: other), until: deadline)
            throw NoQuorum(reason: "this node led the region and handed the leadership to \(other); ask again")
        }
        try await settle(.change(.remove(node)), until: deadline)
    }

    /// Hands `operation` to the machine and, for a membership change, waits
    /// until its entry is applied here.
    private func settle(_ operation: Inbox.Operation, until deadline: Int64) async throws {
        let settled = Proposal(payload: [])
        guard inbox.add(operation: operation, settled: settled) else { throw NoQuorum(reason: "the node is stopping") }
        let wait = max(1, deadline - monotonicMilliseconds())
        let outcome = await withCheckedContinuation { continuation in
            blocking.submit { continuation.resume(returning: settled.wait(milliseconds: wait)) }
        }
        switch outcome {
        case .refused(let reason):
            throw MembershipRefused(description: reason)
        case .accepted:
            return
        case .committed(let ticket):
            guard await waitApplied(ticket.index, until: deadline) else {
                throw NoQuorum(reason: "the membership change was not committed in time")
            }
        }
    }
}
