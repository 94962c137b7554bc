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
    /// A subject whose key can still be unwrapped. A row whose wrapping key
    /// was destroyed (an erased subject, in a copy of the database taken
    /// before the erasure) is no subject: its data is noise.
    static func find(_ pid: PID, keys: RegionKeys, in database: Database) throws -> SubjectRow? {
        try database.fetchOne("SELECT created_at, wrapped_key FROM subjects WHERE pid = ?", [pid.rawValue]) { row -> SubjectRow? in
            guard keys.subjects.isLive(row.blob(1)) else { return nil }
            return SubjectRow(pid: pid, createdAt: Timestamp(milliseconds: row.int64(0)))
        } ?? nil
    }

    /// The first of `candidates` (one pid per live key version) that is a live subject.
    static func find(_ candidates: [PID], keys: RegionKeys, in database: Database) throws -> SubjectRow? {
        for pid in candidates {
            if let row = try find(pid, keys: keys, in: database) { return row }
        }
        return nil
    }

    static func isLive(_ pid: PID, keys: RegionKeys, in database: Database) throws -> Bool {
        try find(pid, keys: keys, in: database) != nil
    }

    /// Whether a row exists for `pid`, live or shredded (what an erasure removes).
    static func exists(_ pid: PID, in database: Database) throws -> Bool {
        try database.fetchOne("SELECT 1 FROM subjects WHERE pid = ?", [pid.rawValue]) { _ in true } ?? false
    }

    /// Inserts a subject: its wrapped key, its link, and its identifier
    /// encrypted under its own key. A pid erased before starts a new life:
    /// its receipts form a new chain (ConsentRecords.receipts).
    static func insert(pid: PID, identifier: Identifier, keys: RegionKeys, now: Timestamp, using random: inout some RandomNumberGenerator,
                       in database: Database) throws {
        let (subjectKey, wrapped, wrapping) = keys.newSubjectKey(for: pid)
        let linkKey = keys.links[0]
        try database.execute("""
            INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, wrap_bucket, wrap_version, created_at, life)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1 + COALESCE((SELECT MAX(life) FROM consent_receipts WHERE pid = ?), 0))
            """, [pid.rawValue, pid.keyVersion, linkKey.link(for: identifier), linkKey.version, wrapped, Int64(wrapping.bucket),
                  Int64(wrapping.version), now.milliseconds, pid.rawValue])
        let sealed = Envelope.seal(Array(identifier.value.utf8), key: subjectKey,
                                   associatedData: identityAssociatedData(pid, identifier.kind), using: &random)
        try database.execute("INSERT INTO identities (pid, kind, sealed_value) VALUES (?, ?, ?)",
                             [pid.rawValue, identifier.kind.rawValue, sealed])
    }

    /// The subject's own key, unwrapped; nil for an unknown subject or one
    /// whose key was destroyed.
    static func key(of pid: PID, keys: RegionKeys, in database: Database) throws -> AESGCMKey? {
        guard let wrapped = try database.fetchOne("SELECT wrapped_key FROM subjects WHERE pid = ?", [pid.rawValue], { $0.blob(0) }) else {
            return nil
        }
        return try keys.subjectKey(wrapped: wrapped, for: pid)
    }

    /// The identifiers a subject was registered under, decrypted.
    static func identifiers(of pid: PID, key: AESGCMKey, in database: Database) throws -> [Identifier] {
        try database.fetchAll("SELECT kind, sealed_value FROM identities WHERE pid = ? ORDER BY kind", [pid.rawValue]) { row -> Identifier? in
            guard let kind = IdentifierKind(rawValue: row.text(0)) else { return nil }
            let plain = try Envelope.open(row.blob(1), key: key, associatedData: identityAssociatedData(pid, kind))
            return Identifier(kind: kind, normalized: String(decoding: plain, as: UTF8.self))
        }.compactMap { $0 }
    }

    static func identityAssociatedData(_ pid: PID, _ kind: IdentifierKind) -> [UInt8] {
        Array("identity/\(pid.rawValue)/\(kind.rawValue)".utf8)
    }
}
