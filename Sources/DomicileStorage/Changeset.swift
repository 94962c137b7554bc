import CSQLite

/// The rows a write transaction changed, as SQLite's session extension
/// encodes them: for each changed row its table, primary key, and the
/// values before and after (docs/FORMATS.md, "Region log entry payload").
/// A follower applying it writes the leader's row images, so what the
/// leader's SQL computed (times, random ids, `max(seq) + 1`) is not computed
/// again. The same type carries a patchset (`ChangeCapture.patchset()`),
/// which `Database.apply` also takes; the region log uses changesets
/// (docs/DECISIONS.md, "Region log entries: SQLite changesets").
public struct Changeset: Sendable, Equatable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// No row changed.
    public var isEmpty: Bool { bytes.isEmpty }
}

/// Why a changeset was not captured or not applied. Each case names a
/// table of the schema at most, never a value of a row.
public enum ChangesetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes are not a changeset (truncated, corrupted).
    case malformed
    /// A change is for a table this database does not have (or for one of
    /// SQLite's own tables).
    case unknownTable
    /// A change is for a table whose columns or primary key differ here.
    case incompatibleTable(String)
    /// Applying a change met a row that differs from the change's "before"
    /// image, a missing row, an existing row or a constraint: the database
    /// has diverged from the one the changeset was taken on.
    case conflict(table: String, kind: ConflictKind)
    /// Tables a session cannot record (no PRIMARY KEY): a capture over them
    /// would silently leave their changes out.
    case tablesWithoutPrimaryKey([String])

    public enum ConflictKind: String, Sendable {
        case data, notFound = "not_found", conflict, constraint, foreignKey = "foreign_key"

        init(_ code: Int32) {
            switch code {
            case SQLITE_CHANGESET_DATA: self = .data
            case SQLITE_CHANGESET_NOTFOUND: self = .notFound
            case SQLITE_CHANGESET_CONFLICT: self = .conflict
            case SQLITE_CHANGESET_FOREIGN_KEY: self = .foreignKey
            default: self = .constraint
            }
        }
    }

    public var description: String {
        switch self {
        case .malformed: return "the changeset is malformed"
        case .unknownTable: return "the changeset changes a table this database does not have"
        case .incompatibleTable(let table): return "the changeset's columns or primary key of \(table) differ from this database's"
        case .conflict(let table, let kind): return "applying the changeset met a \(kind.rawValue) conflict in \(table): the databases diverged"
        case .tablesWithoutPrimaryKey(let tables):
            return "a session cannot record tables without a primary key: \(tables.joined(separator: ", "))"
        }
    }
}

/// A session recording what its connection changes in some tables, from
/// its creation until it is released. It reports the net change: rows a
/// rolled-back savepoint inserted, updated or deleted do not appear.
public final class ChangeCapture {
    private let session: OpaquePointer
    private let database: Database

    init(database: Database, tables: [String]?) throws {
        let missing = try database.tablesWithoutPrimaryKey(among: tables)
        guard missing.isEmpty else { throw ChangesetError.tablesWithoutPrimaryKey(missing) }
        var session: OpaquePointer?
        let code = sqlite3session_create(database.handle, "main", &session)
        guard code == SQLITE_OK, let session else {
            throw StorageError(resultCode: code, connection: database.handle, sql: nil)
        }
        self.session = session
        self.database = database
        // A nil table attaches every table, including those created later.
        for table in tables?.map(Optional.some) ?? [nil] {
            let code = sqlite3session_attach(session, table)
            guard code == SQLITE_OK else { throw StorageError(resultCode: code, connection: database.handle, sql: nil) }
        }
    }

    deinit { sqlite3session_delete(session) }

    /// Every changed row with its values before and after.
    public func changeset() throws(StorageError) -> Changeset {
        try encode(sqlite3session_changeset)
    }

    /// Smaller: an update carries its primary key and changed columns only,
    /// a delete its primary key only. Applying one cannot check that the
    /// follower's row was what the leader's was.
    public func patchset() throws(StorageError) -> Changeset {
        try encode(sqlite3session_patchset)
    }

    private func encode(
        _ generate: (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    ) throws(StorageError) -> Changeset {
        var count: Int32 = 0
        var buffer: UnsafeMutableRawPointer?
        let code = generate(session, &count, &buffer)
        defer { sqlite3_free(buffer) }
        guard code == SQLITE_OK else { throw StorageError(resultCode: code, connection: database.handle, sql: nil) }
        guard let buffer, count > 0 else { return Changeset(bytes: []) }
        return Changeset(bytes: Array(UnsafeRawBufferPointer(start: buffer, count: Int(count))))
    }
}

extension Database {
    /// Starts recording what this connection changes in `tables` (every
    /// table when nil). Throws `tablesWithoutPrimaryKey` if any of them has
    /// no primary key: a session would skip its changes without a word.
    public func captureChanges(in tables: [String]? = nil) throws -> ChangeCapture {
        try ChangeCapture(database: self, tables: tables)
    }

    /// Runs `body` in one write transaction (`transaction`) and returns its
    /// result with the changeset of everything the transaction changed in
    /// `tables` (every table when nil), taken just before COMMIT.
    public func capturingChanges<T>(in tables: [String]? = nil,
                                    _ body: () throws -> T) throws -> (result: T, changeset: Changeset) {
        let capture = try captureChanges(in: tables)
        return try transaction {
            let result = try body()
            return (result, try capture.changeset())
        }
    }

    /// Writes the rows of `changeset` (taken on another database of the same
    /// schema) into this one in a transaction of its own, and runs `body` in
    /// that transaction after them: a follower records there the log index
    /// it has applied, so the two commit together or not at all. If anything
    /// fails, nothing of it stays.
    ///
    /// Any conflict aborts: a follower applying its leader's changesets in
    /// log order never meets one, so one means the databases diverged
    /// (`ChangesetError.conflict`); it is never resolved here. The bytes are
    /// a peer's input: they are checked first (`malformed`, `unknownTable`,
    /// `incompatibleTable`), since SQLite skips the changes of a table it
    /// cannot match without an error.
    ///
    /// Foreign keys are not enforced while it runs (the leader enforced them
    /// when it wrote the rows), so their actions do not run twice: a
    /// changeset lists its rows table by table, and an `ON DELETE CASCADE`
    /// run again here would delete rows the changeset deletes later, a
    /// conflict. That is also why this cannot run inside the caller's
    /// transaction: SQLite changes `foreign_keys` only between transactions.
    /// Triggers would run again too: a replicated schema has none.
    /// Throws `ChangesetError` for the changeset's faults, `StorageError`
    /// for this database's own (a full disk), or what `body` throws.
    public func apply<T>(_ changeset: Changeset, alongside body: () throws -> T) throws -> T {
        try apply([changeset], alongside: body)
    }

    /// Several changesets, one after the other, in one transaction with
    /// `body`: a follower applying a run of consecutive entries at once.
    public func apply<T>(_ changesets: [Changeset], alongside body: () throws -> T) throws -> T {
        precondition(!isInTransaction, "Database.apply runs its own transaction")
        try execute("PRAGMA foreign_keys = OFF")
        defer { try? execute("PRAGMA foreign_keys = ON") }
        return try transaction {
            for changeset in changesets { try applyRows(of: changeset) }
            return try body()
        }
    }

    /// `apply(_:alongside:)` with nothing alongside.
    public func apply(_ changeset: Changeset) throws {
        try apply(changeset) {}
    }

    private func applyRows(of changeset: Changeset) throws {
        guard !changeset.isEmpty else { return }
        try checkShape(of: changeset)
        let conflicts = ConflictRecorder()
        let code = changeset.bytes.withUnsafeBytes { bytes in
            sqlite3changeset_apply(handle, Int32(bytes.count), UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                                   nil, abortOnConflict, Unmanaged.passUnretained(conflicts).toOpaque())
        }
        if let conflict = conflicts.first { throw conflict }
        switch code & 0xFF {
        case SQLITE_OK: return
        case SQLITE_CORRUPT, SQLITE_MISMATCH, SQLITE_RANGE, SQLITE_MISUSE: throw ChangesetError.malformed
        default: throw StorageError(resultCode: code, connection: handle, sql: nil)
        }
    }

    /// Checks the framing of `changeset` (`ChangesetFormat`) and that this
    /// database has each of its tables with the same columns and primary key.
    private func checkShape(of changeset: Changeset) throws {
        let shapes = try tableShapes()
        let tables = try changeset.bytes.withUnsafeBytes { bytes throws(ChangesetError) in try ChangesetFormat.tables(in: bytes) }
        for table in tables.sorted(by: { $0.name < $1.name }) {
            // SQLite's own tables are not replicated (sessions would write sqlite_stat1).
            guard let expected = shapes[table.name], expected.contains(where: { $0 > 0 }) else { throw ChangesetError.unknownTable }
            guard expected == table.primaryKey else { throw ChangesetError.incompatibleTable(table.name) }
        }
    }

    /// The tables among `tables` (every table when nil) that have no
    /// primary key, which a session cannot record.
    public func tablesWithoutPrimaryKey(among tables: [String]? = nil) throws -> [String] {
        let wanted = tables.map(Set.init)
        return try tableShapes()
            .filter { !$0.value.contains(where: { $0 > 0 }) && (wanted?.contains($0.key) ?? true) }
            .map(\.key).sorted()
    }

    /// For each table (SQLite's own excepted), for each column in order, its
    /// position in the primary key from 1 or 0, as a changeset's table
    /// header has them. Read again when the schema changes.
    func tableShapes() throws -> [String: [Int]] {
        let version = try fetchOne("PRAGMA schema_version") { $0.int64(0) } ?? 0
        if version != tableShapeCache.schemaVersion {
            var shapes: [String: [Int]] = [:]
            try forEach("""
                SELECT s.name, p.pk FROM sqlite_schema AS s, pragma_table_info(s.name) AS p
                WHERE s.type = 'table' AND s.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY s.name, p.cid
                """) { shapes[$0.text(0), default: []].append($0.int(1)) }
            tableShapeCache = (version, shapes)
        }
        return tableShapeCache.shapes
    }
}

/// The first conflict met while applying, kept for the error thrown after.
private final class ConflictRecorder {
    var first: ChangesetError?
}

/// SQLite's conflict handler: remember the conflict, abort the apply (which
/// rolls back its savepoint).
private let abortOnConflict: @convention(c) (UnsafeMutableRawPointer?, Int32, OpaquePointer?) -> Int32 = { context, kind, iterator in
    guard let context else { return SQLITE_CHANGESET_ABORT }
    let recorder = Unmanaged<ConflictRecorder>.fromOpaque(context).takeUnretainedValue()
    var name: UnsafePointer<CChar>?
    var columns: Int32 = 0
    var operation: Int32 = 0
    var indirect: Int32 = 0
    // A foreign key conflict is the whole changeset's, reported once at its end.
    let table = kind != SQLITE_CHANGESET_FOREIGN_KEY
        && sqlite3changeset_op(iterator, &name, &columns, &operation, &indirect) == SQLITE_OK
        ? name.map { String(cString: $0) } ?? "" : "*"
    if recorder.first == nil { recorder.first = .conflict(table: table, kind: .init(kind)) }
    return SQLITE_CHANGESET_ABORT
}
