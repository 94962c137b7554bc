import CSQLite

/// The tables of the region log's own SQLite file (docs/FORMATS.md, "Region
/// log storage"), and how they are read back and checked at start-up.
enum RaftStorageSchema {
    static let migrator = Migrator([
        Migration(version: 1, name: "region log", sql: """
            CREATE TABLE raft_entries (
                log_index INTEGER PRIMARY KEY CHECK (log_index > 0),
                term INTEGER NOT NULL CHECK (term >= 0),
                payload BLOB NOT NULL
            ) STRICT;
            CREATE TABLE raft_hard_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                term INTEGER NOT NULL CHECK (term >= 0),
                vote TEXT,
                commit_index INTEGER NOT NULL CHECK (commit_index >= 0)
            ) STRICT;
            CREATE TABLE raft_snapshot (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                log_index INTEGER NOT NULL CHECK (log_index >= 0),
                term INTEGER NOT NULL CHECK (term >= 0),
                configuration BLOB NOT NULL
            ) STRICT;
            INSERT INTO raft_hard_state (id, term, vote, commit_index) VALUES (1, 0, NULL, 0);
            INSERT INTO raft_snapshot (id, log_index, term, configuration) VALUES (1, 0, 0, x'');
            """),
    ])

    /// What start-up reads: everything but the entries' payloads.
    struct Loaded {
        var hardState: RaftHardState
        var snapshot: RaftSnapshotMetadata
        var lastIndex: UInt64
        var lastTerm: UInt64
    }

    /// Reads the hard state, the snapshot metadata and every entry's index
    /// and term, and checks the log's invariants. A value that does not
    /// decode, a missing row, a gap, an entry the snapshot covers, a term
    /// that goes down or past the hard state's, or a commit index outside
    /// the log is corrupt: it throws, and the node refuses to start.
    static func load(_ database: Database) throws(StorageError) -> Loaded {
        let hardState = try database.fetchOne("SELECT term, vote, commit_index FROM raft_hard_state WHERE id = 1") { row throws(StorageError) in
            RaftHardState(term: try unsigned(row, 0, table: "raft_hard_state"), vote: row.optionalText(1),
                          commit: try unsigned(row, 2, table: "raft_hard_state"))
        }
        let snapshot = try database.fetchOne("SELECT log_index, term, configuration FROM raft_snapshot WHERE id = 1") { row throws(StorageError) in
            RaftSnapshotMetadata(index: try unsigned(row, 0, table: "raft_snapshot"), term: try unsigned(row, 1, table: "raft_snapshot"),
                                 configuration: row.blob(2))
        }
        guard let hardState else { throw corruptLog("the hard state row is missing") }
        guard let snapshot else { throw corruptLog("the snapshot row is missing") }

        var last = (index: snapshot.index, term: snapshot.term)
        let statement = try database.statement("SELECT log_index, term FROM raft_entries ORDER BY log_index")
        try statement.bind([])
        defer { statement.reset() }
        while try statement.step() {
            let index = try unsigned(statement.row, 0, table: "raft_entries")
            let term = try unsigned(statement.row, 1, table: "raft_entries")
            guard index == last.index + 1 else {
                throw index <= snapshot.index
                    ? corruptLog("entry \(index) is still stored though the snapshot at \(snapshot.index) covers it")
                    : corruptLog("a gap between entries \(last.index) and \(index)")
            }
            guard term >= last.term else { throw corruptLog("entry \(index) has a lower term than the entry before it") }
            guard term <= hardState.term else { throw corruptLog("entry \(index) has a term past the hard state's") }
            last = (index, term)
        }
        guard (snapshot.index...last.index).contains(hardState.commit) else {
            throw corruptLog("the commit index \(hardState.commit) is outside the log (\(snapshot.index)…\(last.index))")
        }
        return Loaded(hardState: hardState, snapshot: snapshot, lastIndex: last.index, lastTerm: last.term)
    }

    /// A non-negative INTEGER column as UInt64; anything else is corrupt.
    static func unsigned(_ row: Row, _ column: Int, table: String) throws(StorageError) -> UInt64 {
        let value = row.int64(column)
        guard !row.isNull(column), value >= 0 else { throw StorageError.corrupt(table: table, column: row.name(column)) }
        return UInt64(value)
    }

    static func corruptLog(_ detail: String) -> StorageError { StorageError.corruptLog(detail) }
}

extension StorageError {
    /// The region log's stored rows break one of its invariants (a gap, a
    /// term going down). Names indexes, never payloads.
    public static func corruptLog(_ detail: String) -> StorageError {
        StorageError(resultCode: SQLITE_CORRUPT, message: "the region log is corrupt: \(detail)", sql: nil)
    }
}
