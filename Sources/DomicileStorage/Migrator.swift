/// One schema change. Migrations are append-only: a released migration is
/// never edited or removed, a change is a new migration with the next number.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
    /// Runs after `sql`, in the same transaction, for what SQL alone cannot
    /// do well: read an old encoding, refuse a value that does not decode
    /// with a typed error (the whole migration then rolls back), and write
    /// the new form.
    public let convert: (@Sendable (Database) throws -> Void)?

    public init(version: Int, name: String, sql: String, convert: (@Sendable (Database) throws -> Void)? = nil) {
        self.version = version
        self.name = name
        self.sql = sql
        self.convert = convert
    }
}

/// Applies numbered migrations in order, each in its own transaction,
/// recording them in `schema_migrations`.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    public init(_ migrations: [Migration]) {
        for (offset, migration) in migrations.enumerated() {
            precondition(migration.version == offset + 1,
                         "migrations are numbered 1, 2, 3… without gaps; found \(migration.version) at position \(offset + 1)")
        }
        self.migrations = migrations
    }

    /// Applies what is missing and returns the versions applied. Refuses a
    /// database whose history differs from this build's, or that is newer.
    @discardableResult
    public func migrate(_ database: Database, appliedAt: Int64) throws -> [Int] {
        try database.executeScript("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at INTEGER NOT NULL
            ) STRICT
            """)
        let applied = try database.fetchAll("SELECT version, name FROM schema_migrations ORDER BY version") {
            (version: $0.int(0), name: $0.text(1))
        }
        for record in applied {
            guard record.version <= migrations.count else {
                throw StorageFailure.schemaNewerThanCode(version: record.version)
            }
            let expected = migrations[record.version - 1].name
            guard expected == record.name else {
                throw StorageFailure.migrationDiverged(version: record.version, expected: expected, found: record.name)
            }
        }
        var newlyApplied: [Int] = []
        for migration in migrations.dropFirst(applied.count) {
            try database.transaction {
                try database.executeScript(migration.sql)
                try migration.convert?(database)
                try database.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                                     [migration.version, migration.name, appliedAt])
            }
            newlyApplied.append(migration.version)
        }
        return newlyApplied
    }
}
