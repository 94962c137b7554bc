import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// A feature value as stored: decrypted only for a read that may see it.
struct StoredFeature: Sendable {
    let name: Name
    let value: FeatureValue
    let writtenAt: Timestamp
    let expiresAt: Timestamp
}

/// Feature definitions and values in SQLite. Values are sealed under the
/// subject's key, so erasing the subject (its wrapped key) makes every copy
/// of them unreadable.
enum FeatureRecords {
    // MARK: Definitions

    static func definitions(in database: Database) throws -> [FeatureDefinition] {
        try database.fetchAll("SELECT name, type, purpose, ttl_seconds, classification FROM feature_definitions ORDER BY name",
                              [], decodeDefinition)
    }

    static func definitions(for purpose: Purpose, in database: Database) throws -> [FeatureDefinition] {
        try database.fetchAll("""
            SELECT name, type, purpose, ttl_seconds, classification FROM feature_definitions WHERE purpose = ? ORDER BY name
            """, [purpose.rawValue], decodeDefinition)
    }

    static func definition(_ name: Name, in database: Database) throws -> FeatureDefinition? {
        try database.fetchOne("SELECT name, type, purpose, ttl_seconds, classification FROM feature_definitions WHERE name = ?",
                              [name.rawValue], decodeDefinition)
    }

    private static func decodeDefinition(_ row: Row) throws(StorageError) -> FeatureDefinition {
        let table = "feature_definitions"
        return FeatureDefinition(name: try row.decode(0, table: table) { try Name($0, what: "feature name") },
                                 type: try row.decode(1, table: table, FeatureType.init(rawValue:)),
                                 purpose: try row.decode(2, table: table) { try Purpose($0) }, ttlSeconds: row.int64(3),
                                 classification: try row.decode(4, table: table) { try Name($0, what: "classification") })
    }

    enum Upsert: Equatable {
        case created
        case updated
        /// Type or purpose changed while values exist: refused.
        case inUse(valueCount: Int64)
    }

    /// Creates or updates a definition. Its type and purpose may change only
    /// while no value is stored; a new TTL applies to stored values too.
    static func upsert(_ definition: FeatureDefinition, now: Timestamp, in database: Database) throws -> Upsert {
        let name = definition.name.rawValue
        if let existing = try self.definition(definition.name, in: database) {
            if existing.type != definition.type || existing.purpose != definition.purpose {
                let count = try database.fetchOne("SELECT count(*) FROM features WHERE name = ?", [name]) { $0.int64(0) } ?? 0
                if count > 0 { return .inUse(valueCount: count) }
            }
            try database.execute("""
                UPDATE feature_definitions SET type = ?, purpose = ?, ttl_seconds = ?, classification = ?, updated_at = ? WHERE name = ?
                """, [definition.type.rawValue, definition.purpose.rawValue, definition.ttlSeconds, definition.classification.rawValue,
                      now.milliseconds, name])
            if existing.ttlSeconds != definition.ttlSeconds {
                try database.execute("UPDATE features SET expires_at = written_at + ? WHERE name = ?",
                                     [definition.ttlSeconds * 1_000, name])
            }
            return .updated
        }
        try database.execute("""
            INSERT INTO feature_definitions (name, type, purpose, ttl_seconds, classification, updated_at) VALUES (?, ?, ?, ?, ?, ?)
            """, [name, definition.type.rawValue, definition.purpose.rawValue, definition.ttlSeconds, definition.classification.rawValue,
                  now.milliseconds])
        return .created
    }

    // MARK: Values

    /// Stores (or replaces) values, each sealed under the subject key and
    /// linked to the grounds — the consent receipt, or the policy's basis —
    /// the consent gate found for its purpose.
    static func write(_ values: [(FeatureDefinition, FeatureValue, ConsentGate.Grounds)], pid: PID, key: AESGCMKey,
                      now: Timestamp, using random: inout some RandomNumberGenerator, in database: Database) throws {
        for (definition, value, grounds) in values {
            let sealed = Envelope.seal(value.encoded, key: key, associatedData: associatedData(pid, definition.name), using: &random)
            try database.execute("""
                INSERT INTO features (pid, name, purpose, sealed_value, basis, receipt_id, written_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (pid, name) DO UPDATE SET purpose = excluded.purpose, sealed_value = excluded.sealed_value,
                    basis = excluded.basis, receipt_id = excluded.receipt_id, written_at = excluded.written_at,
                    expires_at = excluded.expires_at
                """, [pid.rawValue, definition.name.rawValue, definition.purpose.rawValue, sealed, grounds.basis.rawValue, grounds.receiptID,
                      now.milliseconds, definition.expiry(writtenAt: now).milliseconds])
        }
    }

    /// The subject's values of `purpose`, decrypted.
    static func values(of pid: PID, purpose: Purpose, key: AESGCMKey, in database: Database) throws -> [StoredFeature] {
        try database.fetchAll("""
            SELECT name, sealed_value, written_at, expires_at FROM features WHERE pid = ? AND purpose = ? ORDER BY name
            """, [pid.rawValue, purpose.rawValue]) { row -> StoredFeature in
            let name = try row.decode(0, table: "features") { try Name($0, what: "feature name") }
            let plain = try Envelope.open(row.blob(1), key: key, associatedData: associatedData(pid, name))
            let value = try StorageError.decoded(FeatureValue(encoded: plain), table: "features", column: "sealed_value")
            return StoredFeature(name: name, value: value, writtenAt: Timestamp(milliseconds: row.int64(2)),
                                 expiresAt: Timestamp(milliseconds: row.int64(3)))
        }
    }

    /// Deletes the subject's values of these purposes; returns how many.
    static func purge(_ pid: PID, purposes: Set<Purpose>, in database: Database) throws -> Int {
        var deleted = 0
        for purpose in purposes.sorted() {
            try database.execute("DELETE FROM features WHERE pid = ? AND purpose = ?", [pid.rawValue, purpose.rawValue])
            deleted += database.changes
        }
        return deleted
    }

    /// Deletes up to `limit` values past their TTL; returns how many.
    static func deleteExpired(now: Timestamp, limit: Int, in database: Database) throws -> Int {
        try database.execute("""
            DELETE FROM features WHERE (pid, name) IN
                (SELECT pid, name FROM features WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)
            """, [now.milliseconds, limit])
        return database.changes
    }

    static func associatedData(_ pid: PID, _ name: Name) -> [UInt8] {
        Array("feature/\(pid.rawValue)/\(name.rawValue)".utf8)
    }
}
