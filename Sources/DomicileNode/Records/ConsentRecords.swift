import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// Consent receipts in SQLite: appended, never updated (erasure aside).
enum ConsentRecords {
    /// A receipt's purposes are rows of `consent_receipt_purposes`, in their order.
    static let columns = "receipt_id, pid, seq, action, basis, source, collected_at, expires_at, recorded_at, prev_hash, hash, redacted"

    /// The chain of the subject's current life: the live subject's, else the
    /// last erased one's (redacted). A subject registered again after its
    /// erasure shares its pid with the erased one but not its chain.
    static let lifeOfPID = """
        COALESCE((SELECT life FROM subjects WHERE pid = ?), (SELECT MAX(life) FROM consent_receipts WHERE pid = ?))
        """

    static func receipts(of pid: PID, in database: Database) throws -> [ConsentReceipt] {
        let arguments: [any DatabaseValueConvertible] = [pid.rawValue, pid.rawValue, pid.rawValue]
        let purposes = try purposesByReceipt(of: pid, in: database)
        return try database.fetchAll("SELECT \(columns) FROM consent_receipts WHERE pid = ? AND life = \(lifeOfPID) ORDER BY seq",
                                     arguments) { row in
            let table = "consent_receipts"
            let redacted = row.bool(11)
            // An erased subject's receipts keep only their hash links: no action to decode.
            return ConsentReceipt(
                receiptID: row.text(0), pid: pid, seq: row.int64(2),
                action: redacted ? .revoke : try row.decode(3, table: table, ConsentAction.init(rawValue:)),
                purposes: purposes[row.text(0)] ?? [],
                basis: try row.decodeOptional(4, table: table, LawfulBasis.init(rawValue:)), source: row.text(5),
                collectedAt: Timestamp(milliseconds: row.int64(6)), expiresAt: row.optionalInt64(7).map(Timestamp.init(milliseconds:)),
                recordedAt: Timestamp(milliseconds: row.int64(8)), previousHash: row.blob(9), hash: row.blob(10),
                redacted: redacted)
        }
    }

    /// The purposes of each receipt of the subject's current life, in
    /// position order. A position out of sequence (a row missing) or a
    /// purpose that does not decode is corrupt, never skipped.
    private static func purposesByReceipt(of pid: PID, in database: Database) throws -> [String: [Purpose]] {
        let table = "consent_receipt_purposes"
        var purposes: [String: [Purpose]] = [:]
        try database.forEach("""
            SELECT p.receipt_id, p.position, p.purpose FROM consent_receipt_purposes p JOIN consent_receipts r USING (receipt_id)
            WHERE r.pid = ? AND r.life = \(lifeOfPID) ORDER BY p.receipt_id, p.position
            """, [pid.rawValue, pid.rawValue, pid.rawValue]) { row in
            let receiptID = row.text(0)
            guard row.int64(1) == Int64(purposes[receiptID]?.count ?? 0) else { throw StorageError.corrupt(table: table, column: "position") }
            purposes[receiptID, default: []].append(try row.decode(2, table: table) { try Purpose($0) })
        }
        return purposes
    }

    /// The last receipt's seq and hash, or (0, genesis).
    static func head(of pid: PID, in database: Database) throws -> (seq: Int64, hash: [UInt8]) {
        try database.fetchOne("""
            SELECT seq, hash FROM consent_receipts WHERE pid = ? AND life = (SELECT life FROM subjects WHERE pid = ?)
            ORDER BY seq DESC LIMIT 1
            """, [pid.rawValue, pid.rawValue]) {
            ($0.int64(0), $0.blob(1))
        } ?? (0, ReceiptChain.genesis)
    }

    /// Stores a receipt and folds it into `consent_active`. Returns the
    /// purposes whose grant ended: withdrawn by this receipt, or expired by
    /// `now` (data written under an expired grant must not live on under a
    /// new one).
    @discardableResult
    static func append(_ receipt: ConsentReceipt, gpcPurposes: Set<Purpose>, now: Timestamp, in database: Database) throws -> Set<Purpose> {
        try insert(receipt, in: database)
        let before = try activeGrants(of: receipt.pid, in: database)
        var active = before
        ConsentFolding.apply(receipt, to: &active, gpcPurposes: gpcPurposes)
        try database.execute("DELETE FROM consent_active WHERE pid = ?", [receipt.pid.rawValue])
        for grant in active.values {
            try database.execute("""
                INSERT INTO consent_active (pid, purpose, basis, granted_at, expires_at, receipt_id) VALUES (?, ?, ?, ?, ?, ?)
                """, [receipt.pid.rawValue, grant.purpose.rawValue, grant.basis.rawValue, grant.grantedAt.milliseconds,
                      grant.expiresAt?.milliseconds, grant.receiptID])
        }
        return Set(before.filter { purpose, grant in active[purpose] == nil || grant.expiresAt.map { $0 <= now } ?? false }.keys)
    }

    /// The materialized grants of a subject, before expiry and policy filtering.
    static func activeGrants(of pid: PID, in database: Database) throws -> [Purpose: ActiveConsent] {
        var active: [Purpose: ActiveConsent] = [:]
        try database.forEach("SELECT purpose, basis, granted_at, expires_at, receipt_id FROM consent_active WHERE pid = ?",
                             [pid.rawValue]) { row in
            let purpose = try row.decode(0, table: "consent_active") { try Purpose($0) }
            let basis = try row.decode(1, table: "consent_active", LawfulBasis.init(rawValue:))
            active[purpose] = ActiveConsent(purpose: purpose, basis: basis, grantedAt: Timestamp(milliseconds: row.int64(2)),
                                            expiresAt: row.optionalInt64(3).map(Timestamp.init(milliseconds:)), receiptID: row.text(4))
        }
        return active
    }

    private static func insert(_ receipt: ConsentReceipt, in database: Database) throws {
        // The life of the subject as registered now (NOT NULL: no receipt without a subject).
        try database.execute("""
            INSERT INTO consent_receipts (\(columns), life) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT life FROM subjects WHERE pid = ?))
            """, [
            receipt.receiptID, receipt.pid.rawValue, receipt.seq, receipt.action.rawValue, receipt.basis?.rawValue, receipt.source,
            receipt.collectedAt.milliseconds, receipt.expiresAt?.milliseconds, receipt.recordedAt.milliseconds,
            receipt.previousHash, receipt.hash, receipt.redacted, receipt.pid.rawValue,
        ])
        try insertPurposes(receipt.purposes, of: receipt.receiptID, in: database)
    }

    /// A receipt's purposes, one row each at its position in the list the hash covers.
    static func insertPurposes(_ purposes: [Purpose], of receiptID: String, in database: Database) throws {
        for (position, purpose) in purposes.enumerated() {
            try database.execute("INSERT INTO consent_receipt_purposes (receipt_id, position, purpose) VALUES (?, ?, ?)",
                                 [receiptID, position, purpose.rawValue])
        }
    }
}
