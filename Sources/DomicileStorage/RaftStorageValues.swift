/// The values `RaftStorage` keeps, in primitives only: the consensus module
/// and the node adapt their own types to these, so neither depends on the other.

/// One entry of the region log: the payload is opaque to storage.
public struct RaftStoredEntry: Hashable, Sendable {
    public var index: UInt64
    public var term: UInt64
    public var payload: [UInt8]

    public init(index: UInt64, term: UInt64, payload: [UInt8]) {
        self.index = index
        self.term = term
        self.payload = payload
    }
}

/// What a Raft node must keep across a crash besides its log: the latest
/// term it has seen, whom it voted for in that term, and the commit index.
public struct RaftHardState: Hashable, Sendable {
    public var term: UInt64
    /// The voted-for node's name, nil when it has not voted in `term`.
    public var vote: String?
    public var commit: UInt64

    public init(term: UInt64 = 0, vote: String? = nil, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// Where the log starts: the last entry a snapshot stands for, its term, and
/// the cluster configuration in force there (opaque bytes, encoded by the
/// consensus module). Index 0, term 0 and no configuration before any
/// snapshot or compaction.
public struct RaftSnapshotMetadata: Hashable, Sendable {
    public var index: UInt64
    public var term: UInt64
    public var configuration: [UInt8]

    public init(index: UInt64, term: UInt64, configuration: [UInt8]) {
        self.index = index
        self.term = term
        self.configuration = configuration
    }

    public static let initial = RaftSnapshotMetadata(index: 0, term: 0, configuration: [])
}

/// A request `RaftStorage` refuses; nothing was written. Corrupt stored data
/// is a `StorageError` (`isCorrupt`) instead.
public enum RaftStorageFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// An entry's payload is larger than `RaftStorage.Limits.payloadBytesMax`.
    case payloadTooLarge(index: UInt64, bytes: Int, limit: Int)
    /// An index or term above Int64.max, which SQLite's INTEGER cannot hold.
    case valueOutOfRange(UInt64)
    /// The entries of one call do not have consecutive indexes.
    case entriesNotConsecutive(after: UInt64)
    /// The first new entry would leave a gap after the last stored one.
    case gap(lastIndex: UInt64, firstNew: UInt64)
    /// An entry's term is lower than the term of the entry before it.
    case termDecreases(index: UInt64)
    /// The hard state would go backwards: a lower term, another vote in
    /// the same term, or a lower commit index.
    case hardStateRegresses
    /// The commit index would point before the snapshot or past the last entry.
    case commitOutsideLog(commit: UInt64, firstIndex: UInt64, lastIndex: UInt64)
    /// An entry's term would be past the hard state's term.
    case termPastHardState(index: UInt64)
    /// A committed entry would be replaced by one of another term.
    case rewritesCommitted(index: UInt64)
    /// A snapshot older than the one the log already starts from.
    case snapshotOutOfDate(index: UInt64, current: UInt64)
    /// Entries at or before `firstIndex - 1` were compacted away.
    case compacted(index: UInt64, firstIndex: UInt64)
    /// Entries after `lastIndex` do not exist (yet).
    case unavailable(index: UInt64, lastIndex: UInt64)
    /// Compaction past the commit index (entries that might still change).
    case compactionBeyondCommit(index: UInt64, commit: UInt64)

    public var description: String {
        switch self {
        case .payloadTooLarge(let index, let bytes, let limit):
            return "region log entry \(index) is \(bytes) bytes, more than the limit of \(limit)"
        case .valueOutOfRange(let value): return "region log index or term \(value) is beyond 2^63 - 1"
        case .entriesNotConsecutive(let index): return "region log entries to append skip or repeat an index after \(index)"
        case .gap(let last, let first): return "region log entry \(first) would leave a gap after the last entry \(last)"
        case .termDecreases(let index): return "region log entry \(index) has a lower term than the entry before it"
        case .hardStateRegresses: return "the region log's hard state would go backwards (term, vote or commit)"
        case .commitOutsideLog(let commit, let first, let last):
            return "commit index \(commit) is outside the region log (\(first - 1)…\(last))"
        case .termPastHardState(let index): return "region log entry \(index) has a term past the hard state's"
        case .rewritesCommitted(let index): return "committed region log entry \(index) would be replaced by another term's"
        case .snapshotOutOfDate(let index, let current):
            return "snapshot at \(index) is older than the one the region log starts from (\(current))"
        case .compacted(let index, let first): return "region log entry \(index) was compacted (the log starts at \(first))"
        case .unavailable(let index, let last): return "region log entry \(index) is past the last entry \(last)"
        case .compactionBeyondCommit(let index, let commit):
            return "cannot compact the region log through \(index): only \(commit) is committed"
        }
    }
}
