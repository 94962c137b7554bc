import Synchronization

/// Read-only connections for concurrent readers. WAL lets each read its own
/// snapshot while the writer commits. A read takes an idle connection or
/// opens one, so readers never wait for each other; at most
/// `idleConnectionsMax` stay open between reads.
public final class ReaderPool: Sendable {
    public static let idleConnectionsMaxDefault = 8

    private let path: String
    private let options: Database.Options
    private let idleConnectionsMax: Int
    private let idle = Mutex<[PooledConnection]>([])

    /// A connection is used by one reader at a time; the pool hands it from
    /// one to the next, never to two at once.
    private struct PooledConnection: @unchecked Sendable {
        let database: Database
    }

    public init(path: String, options: Database.Options = Database.Options(),
                idleConnectionsMax: Int = ReaderPool.idleConnectionsMaxDefault) {
        var options = options
        options.queryOnly = true
        self.path = path
        self.options = options
        self.idleConnectionsMax = idleConnectionsMax
    }

    /// Runs `body` on a connection of its own, in one implicit read
    /// transaction per statement (wrap in BEGIN…COMMIT for a consistent
    /// snapshot across statements: see `snapshot`).
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(connection.database)
    }

    /// Runs `body` inside one read transaction, so every statement sees the
    /// same committed state.
    public func snapshot<T>(_ body: (Database) throws -> T) throws -> T {
        try read { database in
            try database.execute("BEGIN DEFERRED")
            defer { try? database.execute("COMMIT") }
            return try body(database)
        }
    }

    private func checkOut() throws -> PooledConnection {
        if let connection = idle.withLock({ $0.popLast() }) { return connection }
        return PooledConnection(database: try Database(path: path, options: options))
    }

    private func checkIn(_ connection: PooledConnection) {
        // A connection left inside a transaction (a body that threw mid-way
        // through `snapshot` is handled there) would pin an old snapshot.
        if connection.database.isInTransaction { try? connection.database.execute("ROLLBACK") }
        idle.withLock { connections in
            if connections.count < idleConnectionsMax { connections.append(connection) }
        }
    }

    public func close() {
        idle.withLock { $0.removeAll() }
    }
}
