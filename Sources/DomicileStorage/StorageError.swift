import CSQLite
import Glibc

/// A failed SQLite call. It carries the statement's SQL and SQLite's own
/// message, never the values bound to the statement: those may be personal
/// data (GRDB's `DatabaseError` keeps arguments out of descriptions the same way).
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// The extended result code (sqlite3_extended_result_codes is on).
    public let resultCode: Int32
    public let message: String
    public let sql: String?
    /// The errno of the system call that failed under SQLite (0 if none):
    /// tells an I/O error caused by a full disk (ENOSPC) from others.
    public let systemErrno: Int32

    init(resultCode: Int32, message: String, sql: String?, systemErrno: Int32 = 0) {
        self.resultCode = resultCode
        self.message = message
        self.sql = sql
        self.systemErrno = systemErrno
    }

    init(resultCode: Int32, connection: OpaquePointer?, sql: String?) {
        let message = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(resultCode))
        self.init(resultCode: resultCode, message: message, sql: sql,
                  systemErrno: connection.map { sqlite3_system_errno($0) } ?? 0)
    }

    /// The primary result code (the low byte of the extended code).
    public var primaryResultCode: Int32 { resultCode & 0xFF }

    public var isConstraintViolation: Bool { primaryResultCode == SQLITE_CONSTRAINT }
    public var isUniqueViolation: Bool {
        resultCode == domicile_sqlite_constraint_unique() || resultCode == domicile_sqlite_constraint_primarykey()
    }
    public var isBusy: Bool { primaryResultCode == SQLITE_BUSY || primaryResultCode == SQLITE_LOCKED }
    /// The database file is damaged (SQLITE_CORRUPT), or a value read from
    /// it does not decode (`corrupt(table:column:)`).
    public var isCorrupt: Bool { primaryResultCode == SQLITE_CORRUPT }

    /// A stored value that does not decode: an enum case this build does not
    /// know, a malformed name or pid, a vector of the wrong length or that
    /// does not open. Names the table and column, never the value.
    public static func corrupt(table: String, column: String) -> StorageError {
        StorageError(resultCode: SQLITE_CORRUPT, message: "a stored value of \(table).\(column) does not decode", sql: nil)
    }

    /// `value`, or `corrupt(table:column:)` when it is nil.
    public static func decoded<T>(_ value: T?, table: String, column: String) throws(StorageError) -> T {
        guard let value else { throw corrupt(table: table, column: column) }
        return value
    }

    /// SQLITE_FULL, or an I/O error whose system call failed with ENOSPC
    /// (growing the WAL index, for instance): the file system is full.
    public var isDiskFull: Bool {
        primaryResultCode == SQLITE_FULL || (primaryResultCode == SQLITE_IOERR && systemErrno == ENOSPC)
    }

    /// Whether `error`, as thrown by the writer or a reader, means the disk
    /// is full (a `StorageError`, a batch SQLite rolled back because of one,
    /// or a durable file write that failed with ENOSPC).
    public static func isDiskFull(_ error: any Error) -> Bool {
        switch error {
        case let error as StorageError: return error.isDiskFull
        case StorageFailure.batchAborted(let cause): return isDiskFull(cause)
        // A file written beside the database (the keyring, rewritten on every erasure).
        case FileIO.Failure.system(_, _, let code): return code == ENOSPC
        default: return false
        }
    }

    public var description: String {
        var text = "SQLite error \(resultCode) (\(String(cString: sqlite3_errstr(resultCode)))): \(message)"
        if let sql { text += " — in `\(sql)`" }
        return text
    }
}

/// Storage failures that are not a single SQLite call.
public enum StorageFailure: Error, Sendable, CustomStringConvertible {
    /// The writer was closed before (or while) the request could run.
    case writerClosed
    /// Too many writes are already waiting; retry later.
    case overloaded
    /// SQLite rolled back the whole batch transaction (e.g. disk full) after
    /// this request had succeeded; it was not committed and may be retried.
    case batchAborted(cause: any Error)
    case migrationDiverged(version: Int, expected: String, found: String)
    case schemaNewerThanCode(version: Int)

    public var description: String {
        switch self {
        case .writerClosed:
            return "the storage writer is closed"
        case .overloaded:
            return "too many writes are waiting for the storage writer"
        case .batchAborted(let cause):
            return "the write batch was rolled back by SQLite (\(cause)); nothing of this request was committed"
        case .migrationDiverged(let version, let expected, let found):
            return "migration \(version) in the database is '\(found)', this build expects '\(expected)'"
        case .schemaNewerThanCode(let version):
            return "the database has migration \(version), newer than this build knows; refusing to run an older binary on it"
        }
    }
}
