import DomicileCrypto
import DomicileModel
import DomicileStorage

/// A stored subject (never its identifier in the clear).
struct SubjectRow: Sendable {
    let pid: PID
    let createdAt: Timestamp
}

/// Subjects and their encrypted identities in SQLite.
enum SubjectRecords {
    /// The first of `candidates` (one pid per live key version) that exists.
    static func find(_ candidates: [PID], in database: Database) throws -> SubjectRow? {
        for pid in candidates {
            if let row = try find(pid, in: database) { return row }
        }
        return nil
    }

    static func find(_ pid: PID, in database: Database) throws -> SubjectRow? {
        try database.fetchOne("SELECT created_at FROM subjects WHERE pid = ?", [pid.rawValue]) {
            SubjectRow(pid: pid, createdAt: Timestamp(milliseconds: $0.int64(0)))
        }
    }

    static func exists(_ pid: PID, in database: Database) throws -> Bool {
        try database.fetchOne("SELECT 1 FROM subjects WHERE pid = ?", [pid.rawValue]) { _ in true } ?? false
    }

    /// Inserts a subject: its wrapped key, its link, and its identifier
    /// encrypted under its own key.
    static func insert(pid: PID, identifier: Identifier, keys: RegionKeys, now: Timestamp, in database: Database) throws {
        let (subjectKey, wrapped) = keys.newSubjectKey(for: pid)
        let linkKey = keys.links[0]
        try database.execute("""
            INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, created_at) VALUES (?, ?, ?, ?, ?, ?)
            """, [pid.rawValue, pid.keyVersion, linkKey.link(for: identifier), linkKey.version, wrapped, now.milliseconds])
        let sealed = Envelope.seal(Array(identifier.value.utf8), key: subjectKey,
                                   associatedData: identityAssociatedData(pid, identifier.kind))
        try database.execute("INSERT INTO identities (pid, kind, sealed_value) VALUES (?, ?, ?)",
                             [pid.rawValue, identifier.kind.rawValue, sealed])
    }

    static func identityAssociatedData(_ pid: PID, _ kind: IdentifierKind) -> [UInt8] {
        Array("identity/\(pid.rawValue)/\(kind.rawValue)".utf8)
    }
}
