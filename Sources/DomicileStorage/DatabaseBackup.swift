import CSQLite
import Glibc

/// How far an online backup has got, reported between its steps.
public struct BackupProgress: Sendable, Equatable {
    /// Pages copied so far.
    public let copiedPages: Int
    /// Pages of the source at the backup's snapshot.
    public let totalPages: Int
}

extension Database {
    /// Pages one step of `backup` copies by default: 4 MiB of 4 KiB pages.
    public static let backupPagesPerStepDefault: Int32 = 1_024
    /// How long a backup waits, in all, for its new file while another connection holds it locked.
    static let backupBusyMillisecondsMax: Int32 = 5_000

    /// Copies this database, as of one committed state, into a new standalone
    /// file at `path` with SQLite's online backup (sqlite3_backup_*), while
    /// other connections keep writing.
    ///
    /// The copy is made inside one read transaction of this connection, so
    /// it is exactly the state committed when the backup began: in WAL mode
    /// the writer is never blocked by it, and the backup never restarts
    /// because of a commit (a backup whose steps each took a new read
    /// transaction would restart after every commit in between). It copies
    /// `pagesPerStep` pages at a time, calling `progress` between steps: each
    /// step is short, and a caller may pace the copy. While it runs,
    /// checkpoints cannot move past its snapshot, so the WAL grows.
    ///
    /// The file is created with mode 0600 (it fails if `path` exists) in
    /// rollback-journal mode (journal_mode DELETE), so it is one
    /// self-contained file that opens read-only without side files; a node
    /// that opens it as its database turns WAL on again. On failure the
    /// partial file is removed.
    ///
    /// `inSnapshot` runs on this connection inside the backup's read
    /// transaction, before the first page is copied: what it reads is what
    /// the copy holds (the region log reads the copy's applied index there).
    public func backup(to path: String, pagesPerStep: Int32 = Database.backupPagesPerStepDefault,
                       inSnapshot: (Database) throws -> Void = { _ in },
                       progress: (BackupProgress) throws -> Void = { _ in }) throws {
        precondition(pagesPerStep > 0, "a backup step copies at least one page")
        precondition(!isInTransaction, "a backup takes its own read transaction")
        let descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw StorageError(resultCode: SQLITE_CANTOPEN, message: "cannot create the backup file (errno \(errno))", sql: nil,
                               systemErrno: errno)
        }
        close(descriptor)
        do {
            try copy(to: path, pagesPerStep: pagesPerStep, inSnapshot: inSnapshot, progress: progress)
        } catch {
            for file in [path, path + "-journal", path + "-wal", path + "-shm"] { unlink(file) }
            throw error
        }
    }

    private func copy(to path: String, pagesPerStep: Int32, inSnapshot: (Database) throws -> Void,
                      progress: (BackupProgress) throws -> Void) throws {
        try copyPages(to: path, pagesPerStep: pagesPerStep, inSnapshot: inSnapshot, progress: progress)
        try BackupDestination.makeStandalone(path)
    }

    private func copyPages(to path: String, pagesPerStep: Int32, inSnapshot: (Database) throws -> Void,
                           progress: (BackupProgress) throws -> Void) throws {
        let destination = try BackupDestination(path: path)
        // The snapshot: a read transaction that every step of the copy uses.
        try execute("BEGIN DEFERRED")
        defer { if isInTransaction { try? execute("COMMIT") } }
        _ = try fetchOne("SELECT count(*) FROM sqlite_schema") { $0.int64(0) }
        try inSnapshot(self)

        guard let backup = sqlite3_backup_init(destination.handle, "main", handle, "main") else {
            throw StorageError(resultCode: sqlite3_extended_errcode(destination.handle), connection: destination.handle, sql: "backup_init")
        }
        var finished = false
        defer { if !finished { sqlite3_backup_finish(backup) } }
        var busyMilliseconds: Int32 = 0
        while true {
            let code = sqlite3_backup_step(backup, pagesPerStep)
            switch code {
            case SQLITE_DONE:
                finished = true
                let result = sqlite3_backup_finish(backup)
                guard result == SQLITE_OK else { throw StorageError(resultCode: result, connection: destination.handle, sql: "backup_finish") }
                return
            case SQLITE_OK:
                let total = Int(sqlite3_backup_pagecount(backup))
                try progress(BackupProgress(copiedPages: total - Int(sqlite3_backup_remaining(backup)), totalPages: total))
            case SQLITE_BUSY, SQLITE_LOCKED:
                // Only the destination can be locked (someone else opened the new file): the source's snapshot is held.
                guard busyMilliseconds < Self.backupBusyMillisecondsMax else { throw StorageError(resultCode: code, connection: destination.handle, sql: "backup_step") }
                busyMilliseconds += sqlite3_sleep(1)
            default:
                throw StorageError(resultCode: code, connection: destination.handle, sql: "backup_step")
            }
        }
    }
}

/// The connection a backup writes into: rollback-journal mode, synchronous
/// FULL, closed when released.
private final class BackupDestination {
    let handle: OpaquePointer

    init(path: String) throws(StorageError) {
        var connection: OpaquePointer?
        let code = sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil)
        guard code == SQLITE_OK, let connection else {
            let error = StorageError(resultCode: code, connection: connection, sql: nil)
            sqlite3_close_v2(connection)
            throw error
        }
        handle = connection
        sqlite3_extended_result_codes(connection, 1)
        try run("PRAGMA journal_mode = DELETE")
        try run("PRAGMA synchronous = FULL")
    }

    deinit { sqlite3_close_v2(handle) }

    /// The copied header still says WAL (bytes 18 and 19 come from the
    /// source), which the connection that wrote it does not notice. A new
    /// connection reads it (entering WAL mode), then turns it back to a
    /// rollback journal: the file needs no -wal or -shm beside it.
    static func makeStandalone(_ path: String) throws(StorageError) {
        let connection = try BackupDestination(path: path)
        try connection.run("SELECT count(*) FROM sqlite_schema")
        try connection.run("PRAGMA journal_mode = DELETE")
    }

    private func run(_ sql: String) throws(StorageError) {
        var message: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &message)
        defer { sqlite3_free(message) }
        guard code == SQLITE_OK else {
            throw StorageError(resultCode: code, message: message.map { String(cString: $0) } ?? "", sql: sql)
        }
    }
}

extension Store {
    /// An online backup of the store's committed state into `path`, made on
    /// a reader connection while the writer keeps writing (`Database.backup`).
    public func backup(to path: String, pagesPerStep: Int32 = Database.backupPagesPerStepDefault,
                       inSnapshot: (Database) throws -> Void = { _ in },
                       progress: (BackupProgress) throws -> Void = { _ in }) throws {
        try read { try $0.backup(to: path, pagesPerStep: pagesPerStep, inSnapshot: inSnapshot, progress: progress) }
    }
}
