import DomicileStorage

/// `region_log_applied`: how far this node's database has applied the
/// region log, written in the transaction of what it applied.
enum RegionLogRecords {
    static func appliedIndex(in database: Database) throws -> UInt64 {
        try database.fetchOne("SELECT applied_index FROM region_log_applied WHERE id = 1") { UInt64(max(0, $0.int64(0))) } ?? 0
    }

    /// The index and term of the last entry applied (0, 0 before any).
    static func applied(in database: Database) throws -> (index: UInt64, term: UInt64) {
        try database.fetchOne("SELECT applied_index, applied_term FROM region_log_applied WHERE id = 1") {
            (UInt64(max(0, $0.int64(0))), UInt64(max(0, $0.int64(1))))
        } ?? (0, 0)
    }

    static func setApplied(index: UInt64, term: UInt64, in database: Database) throws {
        try database.execute("UPDATE region_log_applied SET applied_index = ?, applied_term = ? WHERE id = 1",
                             [Int64(index), Int64(term)])
    }
}
