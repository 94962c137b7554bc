import DomicileCrypto
import DomicileModel
import DomicileStorage

public struct StoredAuditEvent: Sendable {
    public let seq: Int64
    public let event: AuditEvent
    public let previousHash: [UInt8]
    public let hash: [UInt8]
}

/// The node's audit log: one hash chain over every event (docs/FORMATS.md,
/// "Audit event hash"). Events are appended inside the transaction of the
/// change they record, so a change and its audit record commit together.
public enum AuditLog {
    static let domain = "domicile/audit-event/v1"
    public static let genesis = [UInt8](repeating: 0, count: SHA256.byteCount)

    @discardableResult
    public static func append(_ event: AuditEvent, to database: Database) throws -> Int64 {
        let head = try database.fetchOne("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1") { ($0.int64(0), $0.blob(1)) }
        let seq = (head?.0 ?? 0) + 1
        let previous = head?.1 ?? genesis
        let hash = self.hash(seq: seq, event: event, previous: previous)
        try database.execute("""
            INSERT INTO audit_log (seq, at, principal, action, pid, purpose, outcome, request_id, detail, prev_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [seq, event.at.milliseconds, event.principal, event.action, event.pid, event.purpose, event.outcome,
                  event.requestID, event.detail, previous, hash])
        return seq
    }

    public static func hash(seq: Int64, event: AuditEvent, previous: [UInt8]) -> [UInt8] {
        var writer = BinaryWriter(capacity: 256)
        writer.write8(string: domain)
        writer.write(UInt64(bitPattern: seq))
        writer.write(event.at.milliseconds)
        for field in [event.principal, event.action, event.pid ?? "", event.purpose ?? "", event.outcome,
                      event.requestID ?? "", event.detail ?? ""] {
            writer.write16(prefixed: Array(field.utf8))
        }
        writer.write(raw: previous)
        return SHA256.hash(writer.bytes)
    }

    static let selectColumns = "seq, at, principal, action, pid, purpose, outcome, request_id, detail, prev_hash, hash"

    static func decode(_ row: Row) -> StoredAuditEvent {
        StoredAuditEvent(
            seq: row.int64(0),
            event: AuditEvent(at: Timestamp(milliseconds: row.int64(1)), principal: row.text(2), action: row.text(3),
                              pid: row.optionalText(4), purpose: row.optionalText(5), outcome: row.text(6),
                              requestID: row.optionalText(7), detail: row.optionalText(8)),
            previousHash: row.blob(9), hash: row.blob(10))
    }

    public static func events(after seq: Int64, limit: Int, in database: Database) throws -> [StoredAuditEvent] {
        try database.fetchAll("SELECT \(selectColumns) FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit], decode)
    }

    public struct Verification: Sendable, Equatable {
        public let valid: Bool
        public let length: Int64
        /// The last event's hash (hex); empty for an empty log.
        public let head: String
        /// The first event whose link or hash does not check out.
        public let firstInvalidSeq: Int64?
    }

    /// Recomputes every hash and link, oldest first.
    public static func verify(_ database: Database) throws -> Verification {
        var previous = genesis
        var expectedSeq: Int64 = 1
        var invalid: Int64?
        try database.forEach("SELECT \(selectColumns) FROM audit_log ORDER BY seq") { row in
            guard invalid == nil else { return }
            let stored = decode(row)
            let recomputed = hash(seq: stored.seq, event: stored.event, previous: previous)
            if stored.seq != expectedSeq || !ConstantTime.equals(stored.previousHash, previous)
                || !ConstantTime.equals(stored.hash, recomputed) {
                invalid = stored.seq
                return
            }
            previous = stored.hash
            expectedSeq += 1
        }
        let length = try database.fetchOne("SELECT count(*) FROM audit_log") { $0.int64(0) } ?? 0
        let head = try database.fetchOne("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1") { Hex.encode($0.blob(0)) } ?? ""
        return Verification(valid: invalid == nil, length: length, head: head, firstInvalidSeq: invalid)
    }
}
