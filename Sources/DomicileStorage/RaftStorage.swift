/// The region log on disk: its entries, hard state and snapshot metadata in
/// a SQLite file of its own (`raft.sqlite` beside `node.sqlite`; WAL,
/// synchronous=FULL, secure_delete). The shell calls `persist` once per
/// Ready, before it sends that Ready's messages (STYLE.md practice 13):
/// the snapshot, the entries and the hard state go in one transaction, so
/// one fsync makes all of them durable or none.
///
/// Opening it checks the whole log (`RaftStorageSchema.load`): a stored
/// value that does not decode, a gap or a term going down is a
/// `StorageError` that is corrupt, and the node refuses to start.
///
/// Checkpoints run off the persist path, on a `Checkpointer` thread of
/// their own (as for the node's store), so a persist never stalls behind a
/// copy of WAL pages and an fsync of the database file. Unlike the store's,
/// its RESTART past the WAL's ceiling stays on that thread: under persists
/// back to back the WAL still starts over (`CheckpointerTests`).
///
/// Like `Database`, it is used by one thread at a time: not `Sendable`.
public final class RaftStorage {
    public static let fileName = "raft.sqlite"

    public struct Limits: Sendable {
        /// The largest entry payload `persist` accepts (a writer batch's
        /// changeset is bounded well below this).
        public var payloadBytesMax = 16 * 1_024 * 1_024

        public init() {}
    }

    public let limits: Limits
    public private(set) var hardState: RaftHardState
    /// Where the log starts: the snapshot (or compaction) boundary.
    public private(set) var snapshot: RaftSnapshotMetadata
    public private(set) var lastIndex: UInt64
    public private(set) var lastTerm: UInt64
    /// The first index stored (`lastIndex + 1` when the log is empty).
    public var firstIndex: UInt64 { snapshot.index + 1 }

    private let database: Database
    private let checkpointer: Checkpointer

    /// Opens (creating if needed) the log at `path`, and loads and checks it.
    /// `now` (Unix seconds) only stamps the schema migration.
    public convenience init(path: String, now: Int64, limits: Limits = Limits(), options: Database.Options = Database.Options()) throws {
        try self.init(path: path, now: now, limits: limits, options: options, checkpoints: Checkpointer.Settings())
    }

    init(path: String, now: Int64, limits: Limits, options: Database.Options, checkpoints: Checkpointer.Settings) throws {
        var options = options
        options.autoCheckpointPages = 0
        let database = try Database(path: path, options: options)
        try RaftStorageSchema.migrator.migrate(database, appliedAt: now)
        let loaded = try RaftStorageSchema.load(database)
        self.checkpointer = try Checkpointer(path: path, options: options, settings: checkpoints)
        self.database = database
        self.limits = limits
        self.hardState = loaded.hardState
        self.snapshot = loaded.snapshot
        self.lastIndex = loaded.lastIndex
        self.lastTerm = loaded.lastTerm
    }

    deinit { checkpointer.stop() }

    // MARK: Reading

    /// The term of the entry at `index`; the snapshot's index answers with
    /// the snapshot's term.
    public func term(at index: UInt64) throws -> UInt64 {
        if index == snapshot.index { return snapshot.term }
        if index == lastIndex { return lastTerm }
        try checkStored(index)
        let term = try database.fetchOne("SELECT term FROM raft_entries WHERE log_index = ?", [Int64(index)]) { row throws(StorageError) in
            try RaftStorageSchema.unsigned(row, 0, table: "raft_entries")
        }
        guard let term else { throw StorageError.corruptLog("entry \(index) is missing") }
        return term
    }

    /// The entries from `start` up to, not including, `end`, stopping before
    /// the entry that would take the payloads past `byteCountMax` — but
    /// always at least one entry, so a large entry cannot stall replication.
    public func entries(from start: UInt64, upTo end: UInt64, byteCountMax: Int) throws -> [RaftStoredEntry] {
        guard start < end else { return [] }
        try checkStored(start)
        try checkStored(end - 1)
        let statement = try database.statement("""
            SELECT log_index, term, length(payload), payload FROM raft_entries
            WHERE log_index >= ? AND log_index < ? ORDER BY log_index
            """)
        try statement.bind([Int64(start), Int64(end)])
        defer { statement.reset() }
        var entries: [RaftStoredEntry] = []
        var bytes = 0
        while try statement.step() {
            let row = statement.row
            let index = try RaftStorageSchema.unsigned(row, 0, table: "raft_entries")
            guard index == start + UInt64(entries.count) else { break }
            let size = row.int(2)
            if !entries.isEmpty && bytes + size > byteCountMax { return entries }
            entries.append(RaftStoredEntry(index: index, term: try RaftStorageSchema.unsigned(row, 1, table: "raft_entries"),
                                           payload: row.blob(3)))
            bytes += size
        }
        let missing = start + UInt64(entries.count)
        guard missing == end else { throw StorageError.corruptLog("entry \(missing) is missing") }
        return entries
    }

    /// `index` is an entry still stored: after the snapshot, not past the end.
    private func checkStored(_ index: UInt64) throws(RaftStorageFailure) {
        guard index > snapshot.index else { throw .compacted(index: index, firstIndex: firstIndex) }
        guard index <= lastIndex else { throw .unavailable(index: index, lastIndex: lastIndex) }
    }

    // MARK: Writing

    /// Makes one Ready durable, in one transaction (one fsync): first
    /// `snapshot`, which replaces the whole log; then `entries`, deleting
    /// every stored entry at or after the first one's index (a conflicting
    /// suffix); then `hardState`. Entries the snapshot already covers are
    /// skipped. Refuses, writing nothing, what would break the log's
    /// invariants (`RaftStorageFailure`).
    public func persist(hardState newHardState: RaftHardState? = nil, entries newEntries: [RaftStoredEntry] = [],
                        snapshot newSnapshot: RaftSnapshotMetadata? = nil) throws {
        var boundary = snapshot
        var last = (index: lastIndex, term: lastTerm)
        if let newSnapshot {
            guard newSnapshot.index >= snapshot.index else {
                throw RaftStorageFailure.snapshotOutOfDate(index: newSnapshot.index, current: snapshot.index)
            }
            try Self.checkRange(newSnapshot.index, newSnapshot.term)
            boundary = newSnapshot
            last = (newSnapshot.index, newSnapshot.term)
        }
        let appended = Array(newEntries.drop { $0.index <= boundary.index })
        if let first = appended.first {
            guard first.index <= last.index + 1 else { throw RaftStorageFailure.gap(lastIndex: last.index, firstNew: first.index) }
            let previousTerm = first.index - 1 == boundary.index ? boundary.term : try term(at: first.index - 1)
            try checkAppendable(appended, previousTerm: previousTerm)
            if newSnapshot == nil { try checkKeepsCommitted(appended) }
            last = (appended[appended.count - 1].index, appended[appended.count - 1].term)
        }
        let hardState = newHardState ?? self.hardState
        try checkHardState(hardState, lastIndex: last.index, lastTerm: last.term, boundary: boundary.index)

        guard newSnapshot != nil || !appended.isEmpty || newHardState != nil else { return }
        try write(snapshot: newSnapshot, entries: appended, hardState: newHardState)
        snapshot = boundary
        (lastIndex, lastTerm) = last
        self.hardState = hardState
    }

    /// The transaction of `persist`, once every check has passed.
    private func write(snapshot: RaftSnapshotMetadata?, entries: [RaftStoredEntry], hardState: RaftHardState?) throws {
        try database.transaction {
            if let snapshot {
                try database.execute("DELETE FROM raft_entries")
                try saveBoundary(snapshot)
            }
            if let first = entries.first {
                try database.execute("DELETE FROM raft_entries WHERE log_index >= ?", [Int64(first.index)])
                let insert = try database.statement("INSERT INTO raft_entries (log_index, term, payload) VALUES (?, ?, ?)")
                for entry in entries {
                    try insert.bind([Int64(entry.index), Int64(entry.term), entry.payload])
                    try insert.run()
                }
            }
            if let hardState {
                try database.execute("UPDATE raft_hard_state SET term = ?, vote = ?, commit_index = ? WHERE id = 1",
                                     [Int64(hardState.term), hardState.vote, Int64(hardState.commit)])
            }
        }
    }

    private func saveBoundary(_ boundary: RaftSnapshotMetadata) throws(StorageError) {
        try database.execute("UPDATE raft_snapshot SET log_index = ?, term = ?, configuration = ? WHERE id = 1",
                             [Int64(boundary.index), Int64(boundary.term), boundary.configuration])
    }

    /// Drops the entries through `index`, which a snapshot the shell took of
    /// its applied state now stands for; the log then starts after `index`
    /// and keeps its term. `configuration` is the cluster configuration in
    /// force at `index`. Compacting at or before the current start does nothing.
    @discardableResult
    public func compact(through index: UInt64, configuration: [UInt8]) throws -> RaftSnapshotMetadata {
        guard index > snapshot.index else { return snapshot }
        guard index <= hardState.commit else { throw RaftStorageFailure.compactionBeyondCommit(index: index, commit: hardState.commit) }
        let boundary = RaftSnapshotMetadata(index: index, term: try term(at: index), configuration: configuration)
        try database.transaction {
            try database.execute("DELETE FROM raft_entries WHERE log_index <= ?", [Int64(index)])
            try saveBoundary(boundary)
        }
        snapshot = boundary
        return boundary
    }

    // MARK: Checks before writing

    private func checkAppendable(_ entries: [RaftStoredEntry], previousTerm: UInt64) throws(RaftStorageFailure) {
        var previous = (index: entries[0].index - 1, term: previousTerm)
        for entry in entries {
            try Self.checkRange(entry.index, entry.term)
            guard entry.index == previous.index + 1 else { throw .entriesNotConsecutive(after: previous.index) }
            guard entry.term >= previous.term else { throw .termDecreases(index: entry.index) }
            guard entry.payload.count <= limits.payloadBytesMax else {
                throw .payloadTooLarge(index: entry.index, bytes: entry.payload.count, limit: limits.payloadBytesMax)
            }
            previous = (entry.index, entry.term)
        }
    }

    /// The hard state never goes backwards, and what it says agrees with
    /// the log it is stored with (the checks `load` makes at start-up).
    private func checkHardState(_ new: RaftHardState, lastIndex: UInt64, lastTerm: UInt64,
                                boundary: UInt64) throws(RaftStorageFailure) {
        try Self.checkRange(new.term, new.commit)
        let old = hardState
        let sameTermOtherVote = new.term == old.term && old.vote != nil && new.vote != old.vote
        guard new.term >= old.term, !sameTermOtherVote, new.commit >= old.commit else { throw .hardStateRegresses }
        guard (boundary...lastIndex).contains(new.commit) else {
            throw .commitOutsideLog(commit: new.commit, firstIndex: boundary + 1, lastIndex: lastIndex)
        }
        guard lastTerm <= new.term else { throw .termPastHardState(index: lastIndex) }
    }

    /// Entries through the commit index may be written again (a leader
    /// resending them) but never replaced by others.
    private func checkKeepsCommitted(_ entries: [RaftStoredEntry]) throws {
        for entry in entries where entry.index <= hardState.commit {
            guard try term(at: entry.index) == entry.term else { throw RaftStorageFailure.rewritesCommitted(index: entry.index) }
        }
    }

    private static func checkRange(_ values: UInt64...) throws(RaftStorageFailure) {
        for value in values where value > UInt64(Int64.max) { throw .valueOutOfRange(value) }
    }
}
