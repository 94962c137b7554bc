import DomicileModel
import DomicileStorage

/// Migration 9's conversion: the lists that migrations 1–8 stored as joined
/// text (a receipt's purposes `a,b`, an erasure's pids `p,q`, an ack's
/// counts `table=n,…`) become rows of the tables migration 9 creates, then
/// the text columns are dropped. A value that does not decode as the old
/// readers decoded it is corrupt: the migration throws
/// `StorageError.corrupt` naming its table and column and rolls back, so
/// nothing is dropped or defaulted on the way (the node does not start until
/// the value is repaired).
enum JoinedTextMigration {
    static func convert(_ database: Database) throws {
        try convertReceiptPurposes(in: database)
        try convertErasedPIDs(in: database)
        try convertAckCounts(in: database)
        // With secure_delete on, the rewritten rows leave no copy of the old text in free pages.
        try database.executeScript("""
            ALTER TABLE consent_receipts DROP COLUMN purposes;
            ALTER TABLE erasure_requests DROP COLUMN erased_pids;
            ALTER TABLE erasure_node_acks DROP COLUMN counts;
            """)
    }

    private static func convertReceiptPurposes(in database: Database) throws {
        let stored = try database.fetchAll("SELECT receipt_id, purposes FROM consent_receipts", []) { ($0.text(0), $0.text(1)) }
        for (receiptID, text) in stored {
            let purposes = try StorageError.decoded(decodeList(text) { try Purpose($0) }, table: "consent_receipts", column: "purposes")
            try ConsentRecords.insertPurposes(purposes, of: receiptID, in: database)
        }
    }

    private static func convertErasedPIDs(in database: Database) throws {
        let stored = try database.fetchAll("SELECT erasure_id, erased_pids FROM erasure_requests", []) { ($0.text(0), $0.text(1)) }
        for (erasureID, text) in stored {
            let pids = try StorageError.decoded(decodeList(text) { try PID(parsing: $0) }, table: "erasure_requests", column: "erased_pids")
            guard Set(pids).count == pids.count else { throw StorageError.corrupt(table: "erasure_requests", column: "erased_pids") }
            try ErasureRecords.insertErasedPIDs(pids.map(\.rawValue), of: erasureID, in: database)
        }
    }

    private static func convertAckCounts(in database: Database) throws {
        let stored = try database.fetchAll("SELECT erasure_id, region, node, counts FROM erasure_node_acks", []) {
            (erasureID: $0.text(0), region: $0.text(1), node: $0.text(2), counts: $0.text(3))
        }
        for ack in stored {
            let counts = try StorageError.decoded(decodeCounts(ack.counts), table: "erasure_node_acks", column: "counts")
            try ErasureRecords.insertCounts(counts, erasureID: ack.erasureID, region: ack.region, node: ack.node, in: database)
        }
    }

    /// `a,b,c` as the old readers split it (empty items skipped, so `""` is
    /// no item), each item decoded by `decode`; nil if one does not decode.
    static func decodeList<T>(_ text: String, _ decode: (String) throws -> T) -> [T]? {
        try? text.split(separator: ",").map { try decode(String($0)) }
    }

    /// `table=count,…` as the old reader decoded it; nil when a pair is
    /// malformed or a table appears twice.
    static func decodeCounts(_ text: String) -> [String: Int64]? {
        var counts: [String: Int64] = [:]
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: "=")
            guard parts.count == 2, let count = Int64(parts[1]), counts.updateValue(count, forKey: String(parts[0])) == nil else {
                return nil
            }
        }
        return counts
    }
}
