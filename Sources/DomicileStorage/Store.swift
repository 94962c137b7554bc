/// A node's database: one group-commit writer and a pool of readers over one
/// SQLite file, migrated to the current schema when opened.
public final class Store: Sendable {
    public let path: String
    public let writer: Writer
    public let readers: ReaderPool
    private let checkpointer: Checkpointer

    /// The writer checkpoints nothing itself: the store's checkpointer thread
    /// does it (see `Checkpointer`).
    public init(path: String, migrator: Migrator, now: Int64, settings: Writer.Settings = Writer.Settings(),
                options: Database.Options = Database.Options()) throws {
        self.path = path
        var shared = options
        shared.autoCheckpointPages = 0
        // The writer's cache holds the pages one batch of requests dirties.
        // When it cannot, SQLite spills dirty pages to the WAL in mid-batch,
        // and a page changed again after its spill is written twice: at the
        // readers' 32 MiB, 7% of the pages a 100k-subject batch load wrote
        // were spills; at twice that, 212 (docs/BENCHMARKS.md, "What the
        // writer writes").
        var writerOptions = shared
        writerOptions.cacheKibibytes = 2 * options.cacheKibibytes
        writer = try Writer(path: path, options: writerOptions, settings: settings) { database in
            try migrator.migrate(database, appliedAt: now)
        }
        readers = ReaderPool(path: path, options: shared)
        checkpointer = try Checkpointer(path: path, options: shared, writer: writer)
    }

    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writer.write(body)
    }

    /// Checkpoints the whole WAL into the database file and truncates the
    /// WAL to zero bytes, after every write queued before this call has
    /// committed. With `secure_delete`, deleted rows then survive neither in
    /// the WAL nor in free pages. Waits (up to the busy timeout) for readers
    /// still using old WAL frames.
    public func checkpointAndTruncateWAL() async throws {
        try await writer.outsideTransaction { try $0.checkpoint(.truncate) }
    }

    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        try readers.read(body)
    }

    public func snapshot<T>(_ body: (Database) throws -> T) throws -> T {
        try readers.snapshot(body)
    }

    /// See `ReaderPool.awaitEarlierReads`.
    public func awaitEarlierReads(timeoutMilliseconds: Int64) async -> Bool {
        await readers.awaitEarlierReads(timeoutMilliseconds: timeoutMilliseconds)
    }

    public func close() {
        checkpointer.stop()
        readers.close()
        writer.close()
    }
}
