import CSQLite
import Glibc

/// One SQLite connection. It owns its handle and its prepared statements and
/// closes them when released. It is used by one thread at a time (SQLite's
/// multi-thread mode), so it is not `Sendable`; the writer and the reader pool
/// are what move connections between threads.
public final class Database {
    public struct Options: Sendable {
        /// How long a statement waits on a lock held by another connection
        /// before failing with SQLITE_BUSY. Readers never block the writer in
        /// WAL mode; this covers checkpoints and a second process.
        public var busyTimeoutMilliseconds: Int32 = 5_000
        /// Reader connections refuse writes (PRAGMA query_only), so a bug
        /// cannot bypass the single writer.
        public var queryOnly = false
        /// Prepared statements kept per connection, keyed by SQL text.
        public var statementCacheCountMax = 256
        /// Page cache per connection, in KiB (SQLite's default is 2 MiB).
        public var cacheKibibytes = 32 * 1_024
        /// Bytes of the database file read through mmap instead of read(2).
        /// Off by default: a node's file grows with every audited read, and
        /// each growth made every reader remap it (munmap, TLB shootdowns and
        /// page faults were ~15% of read-path CPU in `bench node`).
        public var mmapBytes: Int64 = 0
        /// SQLite's own checkpoint every N WAL pages, inside COMMIT; 0 turns it
        /// off (the store's `Checkpointer` runs them on another thread).
        public var autoCheckpointPages = 1_000

        public init() {}
    }

    /// The SQLite library's version, e.g. "3.40.1".
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }

    public let path: String
    let handle: OpaquePointer
    private let options: Options
    private var statementCache: [String: Statement] = [:]
    /// Each table's primary key columns at a schema version (`tableShapes`).
    var tableShapeCache: (schemaVersion: Int64, shapes: [String: [Int]]) = (-1, [:])

    /// Opens (creating if needed) the database at `path` with Domicile's
    /// durability and privacy settings:
    /// WAL (readers do not block the writer), synchronous=FULL (a commit is
    /// on disk when COMMIT returns, WAL included), secure_delete=ON (deleted
    /// content is overwritten, not left in free pages), foreign_keys=ON.
    /// The database file and its -wal and -shm files are readable by their
    /// owner only (mode 0600).
    public init(path: String, options: Options = Options()) throws(StorageError) {
        Self.makePrivate(path)
        var connection: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let code = sqlite3_open_v2(path, &connection, flags, nil)
        guard code == SQLITE_OK, let connection else {
            let error = StorageError(resultCode: code, connection: connection, sql: nil)
            sqlite3_close_v2(connection)
            throw error
        }
        self.path = path
        self.handle = connection
        self.options = options
        sqlite3_extended_result_codes(connection, 1)
        sqlite3_busy_timeout(connection, options.busyTimeoutMilliseconds)
        try configure()
    }

    /// SQLite creates a database file with mode 0644 (less the umask) and
    /// gives its -wal and -shm files the database file's mode. Creating the
    /// file first with 0600 keeps all three private; files left by an older
    /// build are narrowed to their owner. Failures are left to
    /// `sqlite3_open_v2`, which reports them.
    ///
    /// An existing file is never opened here: closing any descriptor of a
    /// file drops every POSIX lock this process holds on it, those of
    /// SQLite's other connections included (another process could then
    /// checkpoint and delete the WAL under them). So only `O_EXCL` creation,
    /// and `chmod` by path.
    private static func makePrivate(_ path: String) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor >= 0 { close(descriptor) }
        for file in [path, path + "-wal", path + "-shm"] {
            var info = stat()
            if stat(file, &info) == 0, info.st_mode & 0o077 != 0 { chmod(file, info.st_mode & 0o700) }
        }
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    private func configure() throws(StorageError) {
        let mode = try fetchOne("PRAGMA journal_mode = WAL") { $0.text(0) }
        guard mode == "wal" else {
            throw StorageError(resultCode: SQLITE_ERROR, message: "could not enable WAL (got \(mode ?? "nothing"))",
                               sql: "PRAGMA journal_mode = WAL")
        }
        try execute("PRAGMA synchronous = FULL")
        try execute("PRAGMA secure_delete = ON")
        try execute("PRAGMA foreign_keys = ON")
        try execute("PRAGMA cache_size = -\(options.cacheKibibytes)")
        _ = try fetchOne("PRAGMA mmap_size = \(options.mmapBytes)") { $0.int64(0) }
        _ = try fetchOne("PRAGMA wal_autocheckpoint = \(options.autoCheckpointPages)") { $0.int64(0) }
        // A WAL file that was reset after a checkpoint is truncated to this size.
        _ = try fetchOne("PRAGMA journal_size_limit = \(64 * 1_024 * 1_024)") { $0.int64(0) }
        if options.queryOnly { try execute("PRAGMA query_only = ON") }
    }

    // MARK: Statements

    /// A cached prepared statement for `sql`.
    public func statement(_ sql: String) throws(StorageError) -> Statement {
        if let cached = statementCache[sql] { return cached }
        let statement = try Statement(connection: handle, sql: sql)
        if statementCache.count >= options.statementCacheCountMax { statementCache.removeAll(keepingCapacity: true) }
        statementCache[sql] = statement
        return statement
    }

    /// Runs one statement with arguments.
    public func execute(_ sql: String, _ arguments: [any DatabaseValueConvertible] = []) throws(StorageError) {
        let statement = try statement(sql)
        try statement.bind(arguments)
        try statement.run()
    }

    /// Runs several `;`-separated statements without arguments (schema scripts).
    public func executeScript(_ sql: String) throws(StorageError) {
        var message: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &message)
        defer { sqlite3_free(message) }
        guard code == SQLITE_OK else {
            throw StorageError(resultCode: code, message: message.map { String(cString: $0) } ?? "", sql: sql)
        }
    }

    public func fetchAll<T>(_ sql: String, _ arguments: [any DatabaseValueConvertible] = [],
                            _ map: (Row) throws -> T) throws -> [T] {
        let statement = try statement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        var rows: [T] = []
        while try statement.step() { rows.append(try map(statement.row)) }
        return rows
    }

    /// Visits each row without collecting them.
    public func forEach(_ sql: String, _ arguments: [any DatabaseValueConvertible] = [],
                        _ visit: (Row) throws -> Void) throws {
        let statement = try statement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        while try statement.step() { try visit(statement.row) }
    }

    public func fetchOne<T>(_ sql: String, _ arguments: [any DatabaseValueConvertible] = [],
                            _ map: (Row) throws(StorageError) -> T) throws(StorageError) -> T? {
        let statement = try statement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return try map(statement.row)
    }

    public var changes: Int { Int(sqlite3_changes64(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    /// True inside an explicit transaction (SQLite is not in autocommit mode).
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
    /// Pages this connection has written to its files so far (to the WAL, in
    /// WAL mode): `SQLITE_DBSTATUS_CACHE_WRITE`. It wraps around after 2³¹
    /// pages, so compare two readings for equality, not order.
    public var pagesWritten: Int32 {
        var current: Int32 = 0
        var highwater: Int32 = 0
        sqlite3_db_status(handle, SQLITE_DBSTATUS_CACHE_WRITE, &current, &highwater, 0)
        return current
    }

    // MARK: Transactions

    /// Runs `body` in `BEGIN IMMEDIATE … COMMIT` (the write lock is taken up
    /// front, so the transaction cannot fail to upgrade later); rolls back if
    /// `body` throws. Outside the writer this is for tools and tests.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
    }

    public enum CheckpointMode: Sendable {
        case passive, full, restart, truncate

        var raw: Int32 {
            switch self {
            case .passive: return SQLITE_CHECKPOINT_PASSIVE
            case .full: return SQLITE_CHECKPOINT_FULL
            case .restart: return SQLITE_CHECKPOINT_RESTART
            case .truncate: return SQLITE_CHECKPOINT_TRUNCATE
            }
        }
    }

    /// Copies WAL frames into the database file. `.truncate` also empties the
    /// WAL file, so erased rows survive neither in the WAL nor (with
    /// secure_delete) in the database's free pages.
    public func checkpoint(_ mode: CheckpointMode) throws(StorageError) {
        var logFrames: Int32 = 0
        var checkpointed: Int32 = 0
        let code = sqlite3_wal_checkpoint_v2(handle, nil, mode.raw, &logFrames, &checkpointed)
        guard code == SQLITE_OK else {
            throw StorageError(resultCode: code, connection: handle, sql: "wal_checkpoint")
        }
    }
}
