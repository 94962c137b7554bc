import DomicileModel

/// The leader's side and the follower's side of log replication.
extension RaftNode {
    // MARK: Leader

    mutating func appendProposal(_ payload: LogEntry.Payload) throws(RaftError) -> ProposalTicket {
        guard role == .leader else { throw .notLeader(leader: leader) }
        guard transferee == nil else { throw .transferInProgress }
        guard log.lastIndex - log.committed < UInt64(settings.uncommittedEntriesCountMax) else {
            throw .overloaded("\(settings.uncommittedEntriesCountMax) entries are uncommitted")
        }
        appendLocal([payload])
        if case .membership = payload { syncProgress() }
        broadcastAppend()
        return ProposalTicket(index: log.lastIndex, term: term)
    }

    mutating func appendLocal(_ payloads: [LogEntry.Payload]) {
        let first = log.lastIndex + 1
        log.append(payloads.enumerated().map { LogEntry(index: first + UInt64($0.offset), term: term, payload: $0.element) })
    }

    /// One progress per member but the leader, added or dropped as the
    /// membership changes.
    mutating func syncProgress() {
        let members = log.membership.members.subtracting([id])
        for peer in progress.keys where !members.contains(peer) { progress[peer] = nil }
        for peer in members where progress[peer] == nil { progress[peer] = Progress(next: log.lastIndex + 1) }
        if let target = transferee, !log.membership.voters.contains(target) { transferee = nil }
    }

    /// The shell persisted the leader's own entries: they now count toward
    /// the quorum.
    mutating func leaderPersisted() {
        if maybeCommit() { broadcastAppend() }
    }

    /// Commits the highest index a quorum of voters has persisted, if it is
    /// of the current term (Raft §5.4.2: counting replicas never commits an
    /// entry of an older term directly; Figure 8).
    mutating func maybeCommit() -> Bool {
        let voters = log.membership.voters
        var matches = progress.filter { voters.contains($0.key) }.map(\.value.match)
        if voters.contains(id) { matches.append(log.stableIndex) }
        guard matches.count >= log.membership.quorum else { return false }
        let quorumIndex = matches.sorted(by: >)[log.membership.quorum - 1]
        guard quorumIndex > log.committed, log.term(at: quorumIndex) == term || settings.unsafeCommitByCountingAnyTerm else { return false }
        let firstOfTerm = log.term(at: log.committed) != term
        log.commit(to: quorumIndex)
        if firstOfTerm { releaseReadsAwaitingCommit() }
        return true
    }

    mutating func broadcastAppend() {
        for peer in progress.keys.sorted() { sendAppend(to: peer, allowEmpty: true) }
    }

    mutating func broadcastHeartbeat(readRound: UInt64) {
        for (peer, state) in progress.sorted(by: { $0.key < $1.key }) {
            send(to: peer, .heartbeat(commit: min(state.match, log.committed), readRound: readRound))
        }
    }

    /// Sends the next append (or a snapshot) to `peer` unless its window is
    /// full. Returns whether a message left.
    @discardableResult
    mutating func sendAppend(to peer: NodeName, allowEmpty: Bool) -> Bool {
        guard var state = progress[peer], !state.isPaused(window: settings.inflightAppendsMax) else { return false }
        defer { progress[peer] = state }
        let prevIndex = state.next - 1
        guard let prevTerm = log.term(at: prevIndex) else {
            // The entries it needs were compacted away.
            state.becomeSnapshot(index: log.snapshotIndex)
            send(to: peer, .snapshot(log.snapshot))
            return true
        }
        let entries = log.entries(from: state.next, countMax: settings.appendEntriesCountMax, bytesMax: settings.appendBytesMax)
        guard !entries.isEmpty || allowEmpty else { return false }
        send(to: peer, .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: log.committed))
        state.sent(lastIndex: prevIndex + UInt64(entries.count), entries: entries.count)
        return true
    }

    /// Fills the follower's window with what it lacks.
    mutating func sendPending(to peer: NodeName) {
        for _ in 0...settings.inflightAppendsMax {
            guard let state = progress[peer], state.next <= log.lastIndex, sendAppend(to: peer, allowEmpty: false) else { return }
        }
    }

    mutating func handleAppendResponse(from peer: NodeName, index: UInt64, rejected: Bool, hint: UInt64) {
        // An index beyond our log can only come from a broken peer.
        guard var state = progress[peer], index <= log.lastIndex else { return }
        state.recentActive = true
        if rejected {
            let retry = state.refuse(index, hint: hint)
            progress[peer] = state
            if retry { sendAppend(to: peer, allowEmpty: true) }
            return
        }
        let advanced = state.acknowledge(index)
        switch state.state {
        case .probe where advanced: state.becomeReplicate()
        case .snapshot(let snapshotIndex) where state.match >= snapshotIndex: state.becomeReplicate()
        default: break
        }
        progress[peer] = state
        if advanced, maybeCommit() { broadcastAppend() }
        sendPending(to: peer)
        if advanced, peer == transferee, state.match == log.lastIndex {
            send(to: peer, .timeoutNow)
        }
    }

    mutating func handleHeartbeatResponse(from peer: NodeName, readRound: UInt64) {
        guard var state = progress[peer] else { return }
        state.recentActive = true
        state.probeSent = false
        // A full window that a heartbeat gets through: appends were lost.
        if state.state == .replicate, state.isPaused(window: settings.inflightAppendsMax) { state.becomeProbe() }
        progress[peer] = state
        if state.match < log.lastIndex { sendAppend(to: peer, allowEmpty: true) }
        if readRound > 0 { acknowledgeReadRound(readRound, from: peer) }
    }

    /// A snapshot that got lost is sent again after an election timeout.
    mutating func tickSnapshots() {
        for (peer, state) in progress {
            guard case .snapshot = state.state else { continue }
            progress[peer]!.snapshotTicks += 1
            if progress[peer]!.snapshotTicks >= settings.electionTicks { progress[peer]!.becomeProbe() }
        }
    }

    // MARK: Follower

    mutating func handleAppend(from leader: NodeName, prevIndex: UInt64, prevTerm: UInt64, entries: [LogEntry], commit: UInt64) {
        if prevIndex < log.committed {
            // Old news: everything through our commit index matches.
            send(to: leader, .appendResponse(index: log.committed, rejected: false, hint: 0))
            return
        }
        guard log.matches(index: prevIndex, term: prevTerm) else {
            send(to: leader, .appendResponse(index: prevIndex, rejected: true, hint: rejectHint(prevIndex)))
            return
        }
        guard let lastNew = log.merge(after: prevIndex, entries) else { return }
        log.commit(to: min(commit, lastNew))
        send(to: leader, .appendResponse(index: lastNew, rejected: false, hint: 0))
    }

    /// The last index that may still match the leader's log: before the
    /// whole run of the conflicting term, so the leader skips a term per
    /// round trip instead of an entry (Raft §5.3).
    private func rejectHint(_ prevIndex: UInt64) -> UInt64 {
        guard prevIndex <= log.lastIndex, let conflictTerm = log.term(at: prevIndex) else { return log.lastIndex }
        var index = prevIndex
        while index > log.committed, index > log.firstIndex, log.term(at: index - 1) == conflictTerm { index -= 1 }
        return max(index - 1, log.committed)
    }

    mutating func handleHeartbeat(from leader: NodeName, commit: UInt64, readRound: UInt64) {
        log.commit(to: min(commit, log.lastIndex))
        send(to: leader, .heartbeatResponse(readRound: readRound))
    }

    mutating func handleSnapshot(from leader: NodeName, _ snapshot: Snapshot) {
        let metadata = snapshot.metadata
        if metadata.index <= log.committed {
            send(to: leader, .appendResponse(index: log.committed, rejected: false, hint: 0))
            return
        }
        if log.matches(index: metadata.index, term: metadata.term) {
            // We hold the snapshot's last entry: our log through it is the
            // leader's, so it is committed.
            log.commit(to: metadata.index)
        } else {
            log.restore(snapshot)
        }
        send(to: leader, .appendResponse(index: metadata.index, rejected: false, hint: 0))
    }
}
