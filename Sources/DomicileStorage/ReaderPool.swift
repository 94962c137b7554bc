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
    /// Reads in flight, counted by the epoch they began in (`awaitEarlierReads`).
    private let epochs = Mutex<Epochs>(Epochs())

    private struct Epochs {
        var current: UInt64 = 0
        var reading: [UInt64: Int] = [:]
    }

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
        let epoch = epochs.withLock { epochs in
            epochs.reading[epochs.current, default: 0] += 1
            return epochs.current
        }
        defer {
            epochs.withLock { epochs in
                epochs.reading[epoch, default: 1] -= 1
                if epochs.reading[epoch] == 0 { epochs.reading[epoch] = nil }
            }
        }
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(connection.database)
    }

    /// A grace period, as RCU's `synchronize`: returns once every read that
    /// began before the call has ended (true), or after `timeoutMilliseconds`
    /// with some still running (false). What a commit retired (a key version
    /// an erasure rotated away) can then be destroyed without a read of the
    /// state before that commit still needing it.
    public func awaitEarlierReads(timeoutMilliseconds: Int64) async -> Bool {
        let boundary = epochs.withLock { epochs -> UInt64 in
            epochs.current += 1
            return epochs.current
        }
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(timeoutMilliseconds))
        while epochs.withLock({ $0.reading.keys.contains { $0 < boundary } }) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .microseconds(500))
        }
        return true
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
