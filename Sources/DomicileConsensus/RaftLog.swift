/// The log as the machine sees it: a snapshot standing for everything up to
/// its index, then the entries after it, and the marks the shell moves:
/// what is persisted (`stableIndex`), committed and applied.
struct RaftLog: Sendable {
    private(set) var snapshot: Snapshot
    /// `entries[k].index == snapshot.metadata.index + 1 + k`.
    private(set) var entries: [LogEntry]
    private(set) var committed: UInt64
    var applied: UInt64
    /// Entries through here are on the shell's disk.
    private(set) var stableIndex: UInt64
    /// The snapshot still has to be persisted (received from a leader).
    private(set) var snapshotUnstable = false
    /// Indexes of the membership entries in `entries`, ascending.
    private var membershipIndexes: [UInt64] = []

    init(snapshot: Snapshot, entries: [LogEntry], committed: UInt64, applied: UInt64, snapshotUnstable: Bool) {
        self.snapshot = snapshot
        self.entries = entries
        self.committed = committed
        self.applied = applied
        self.stableIndex = snapshot.metadata.index + UInt64(entries.count)
        self.snapshotUnstable = snapshotUnstable
        membershipIndexes = entries.filter(\.isMembership).map(\.index)
    }

    var snapshotIndex: UInt64 { snapshot.metadata.index }
    var firstIndex: UInt64 { snapshotIndex + 1 }
    var lastIndex: UInt64 { snapshotIndex + UInt64(entries.count) }
    var lastTerm: UInt64 { entries.last?.term ?? snapshot.metadata.term }

    /// The term of the entry at `index`, or nil when it was compacted away
    /// or is beyond the end.
    func term(at index: UInt64) -> UInt64? {
        if index == snapshotIndex { return snapshot.metadata.term }
        guard index > snapshotIndex, index <= lastIndex else { return nil }
        return entries[position(index)].term
    }

    func matches(index: UInt64, term: UInt64) -> Bool { self.term(at: index) == term }

    /// Raft's election restriction: a candidate's log is at least as up to
    /// date as ours.
    func isUpToDate(lastIndex candidateIndex: UInt64, lastTerm candidateTerm: UInt64) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    func entry(at index: UInt64) -> LogEntry { entries[position(index)] }

    /// Entries from `index` on, at most `countMax` and (the first aside)
    /// `bytesMax` bytes.
    func entries(from index: UInt64, countMax: Int, bytesMax: Int) -> [LogEntry] {
        guard index > snapshotIndex, index <= lastIndex else { return [] }
        var batch: [LogEntry] = []
        var bytes = 0
        for entry in entries[position(index)...] {
            guard batch.count < countMax else { break }
            bytes += entry.weightBytes
            if !batch.isEmpty, bytes > bytesMax { break }
            batch.append(entry)
        }
        return batch
    }

    // MARK: Membership

    /// The membership in force: the latest membership entry, else the
    /// snapshot's.
    var membership: Membership { membership(at: lastIndex) }

    func membership(at index: UInt64) -> Membership {
        if let latest = membershipIndexes.last(where: { $0 <= index }), case .membership(let membership) = entry(at: latest).payload {
            return membership
        }
        return snapshot.metadata.membership
    }

    /// A membership entry not yet committed (only one may be pending).
    var hasPendingMembership: Bool { (membershipIndexes.last ?? 0) > committed }

    // MARK: Changes

    /// Appends entries that continue the log (the leader's own).
    mutating func append(_ new: [LogEntry]) {
        for entry in new {
            precondition(entry.index == lastIndex + 1, "appended entry \(entry.index) does not follow \(lastIndex)")
            entries.append(entry)
            if entry.isMembership { membershipIndexes.append(entry.index) }
        }
    }

    /// A follower's append: the entries after `prevIndex`, keeping the ones
    /// it already has and truncating from the first conflict. Returns the
    /// last index the leader's entries cover, or nil when an entry would
    /// overwrite a committed one (a broken peer; refused).
    mutating func merge(after prevIndex: UInt64, _ new: [LogEntry]) -> UInt64? {
        let lastNew = prevIndex + UInt64(new.count)
        guard let conflict = new.first(where: { !matches(index: $0.index, term: $0.term) }) else { return lastNew }
        if conflict.index <= committed { return nil }
        truncate(from: conflict.index)
        append(Array(new[Int(conflict.index - prevIndex - 1)...]))
        return lastNew
    }

    private mutating func truncate(from index: UInt64) {
        entries.removeSubrange(position(index)...)
        membershipIndexes.removeAll { $0 >= index }
        stableIndex = min(stableIndex, index - 1)
    }

    mutating func commit(to index: UInt64) {
        precondition(index <= lastIndex, "commit \(index) beyond the last index \(lastIndex)")
        committed = max(committed, index)
    }

    /// Replaces the log by a leader's snapshot.
    mutating func restore(_ new: Snapshot) {
        snapshot = new
        entries = []
        membershipIndexes = []
        committed = new.metadata.index
        applied = new.metadata.index
        stableIndex = new.metadata.index
        snapshotUnstable = true
    }

    /// Drops the entries through `index`, which the shell's snapshot now
    /// stands for.
    mutating func compact(through index: UInt64, payload: [UInt8]) -> Snapshot {
        let metadata = SnapshotMetadata(index: index, term: term(at: index)!, membership: membership(at: index))
        entries.removeSubrange(..<position(index + 1))
        membershipIndexes.removeAll { $0 <= index }
        snapshot = Snapshot(metadata: metadata, payload: payload)
        return snapshot
    }

    // MARK: Persistence marks

    /// Entries the shell has not persisted yet.
    var unstableEntries: [LogEntry] { stableIndex < lastIndex ? Array(entries[position(stableIndex + 1)...]) : [] }

    var pendingSnapshot: Snapshot? { snapshotUnstable ? snapshot : nil }

    /// The shell persisted entries through (`index`, `term`); ignored when the
    /// log has changed there since.
    mutating func stable(through index: UInt64, term: UInt64) {
        guard index > stableIndex, matches(index: index, term: term) else { return }
        stableIndex = index
    }

    mutating func snapshotPersisted(index: UInt64) {
        if index == snapshotIndex { snapshotUnstable = false }
    }

    /// Committed entries not yet handed out for applying.
    func entriesToApply(countMax: Int) -> [LogEntry] {
        guard committed > applied else { return [] }
        let end = min(committed, applied + UInt64(countMax))
        return Array(entries[position(applied + 1)...position(end)])
    }

    private func position(_ index: UInt64) -> Int {
        precondition(index > snapshotIndex && index <= lastIndex + 1, "index \(index) outside the log (\(snapshotIndex), \(lastIndex)]")
        return Int(index - snapshotIndex - 1)
    }
}

extension LogEntry {
    var isMembership: Bool {
        if case .membership = payload { return true }
        return false
    }
}
