import CSQLite

extension Database {
    /// Replaces this database's content with that of the database file at
    /// `path`, in place, with SQLite's online backup run the other way
    /// round (the file is the source, this connection's main database the
    /// destination): one write transaction of this connection, so the
    /// database's other connections stay open and see the new content from
    /// their next read transaction, and a crash leaves the old content or
    /// the new, never a mix. How a region log follower installs a snapshot
    /// while it runs. Both must have the same page size (every node's
    /// database has SQLite's default).
    public func restore(from path: String) throws {
        precondition(!isInTransaction, "a restore takes its own write transaction")
        var source: OpaquePointer?
        let opened = sqlite3_open_v2(path, &source, SQLITE_OPEN_READONLY, nil)
        defer { sqlite3_close_v2(source) }
        guard opened == SQLITE_OK, let source else {
            throw StorageError(resultCode: opened, message: "cannot open the snapshot file", sql: nil)
        }
        guard let backup = sqlite3_backup_init(handle, "main", source, "main") else {
            throw StorageError(resultCode: sqlite3_errcode(handle), connection: handle, sql: nil)
        }
        let stepped = sqlite3_backup_step(backup, -1)
        let finished = sqlite3_backup_finish(backup)
        guard stepped == SQLITE_DONE else { throw StorageError(resultCode: stepped, connection: handle, sql: nil) }
        guard finished == SQLITE_OK else { throw StorageError(resultCode: finished, connection: handle, sql: nil) }
    }
}
