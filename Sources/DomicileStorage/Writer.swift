import Foundation
import CLinux
import DomicileModel

/// The single writer of a database, with group commit.
///
/// Callers `await write { db in … }` from any task. A dedicated thread takes
/// every request queued while the previous commit was being made durable,
/// runs them in one `BEGIN IMMEDIATE … COMMIT` transaction, each inside its
/// own savepoint, and resumes each caller only after that COMMIT returned (in
/// WAL mode with synchronous=FULL, after the WAL is fsynced). So concurrent
/// writers share one fsync instead of queueing for one each, and a request
/// that throws rolls back its savepoint and fails alone.
public final class Writer: Sendable {
    public struct Settings: Sendable {
        /// Requests folded into one transaction at most. Larger batches share
        /// one fsync among more writers but hold the write lock longer and
        /// delay the batch's first caller; 512 small writes commit in a few ms.
        public var batchRequestsMax = 512
        /// Requests waiting for the writer at most; beyond that `write` fails
        /// at once with `overloaded` instead of queueing without bound.
        public var pendingRequestsMax = 65_536
        /// When set, each batch runs with a session on every table (each
        /// needs a primary key) and this receives the batch's changeset
        /// (`Changeset`, possibly empty) just before COMMIT, with the
        /// connection still in the batch's transaction: what it writes there
        /// (the region log's applied index) commits with the batch and is
        /// not in the changeset. If it throws, the batch rolls back and its
        /// requests fail with that error.
        public var beforeCommit: (@Sendable (Changeset, Database) throws -> Void)?
        /// Called on the writer thread after the COMMIT of a batch whose
        /// `beforeCommit` returned, with whether the COMMIT succeeded, before
        /// any of the batch's callers resumes.
        public var afterCommit: (@Sendable (_ committed: Bool) -> Void)?

        public init() {}

        /// One transaction, one fsync, per write: the baseline group commit
        /// is measured against (`domicile bench storage`).
        public static var oneTransactionPerWrite: Settings {
            var settings = Settings()
            settings.batchRequestsMax = 1
            return settings
        }
    }

    private let queue: RequestQueue
    private let statistics = Locked(WriterStatistics())
    private let finished = DispatchSemaphore(value: 0)
    private let settings: Settings

    /// Opens the writer connection, runs `prepare` (migrations) on it before
    /// any request, then starts the writer thread.
    public init(path: String, options: Database.Options = Database.Options(), settings: Settings = Settings(),
                prepare: (Database) throws -> Void = { _ in }) throws {
        precondition(settings.batchRequestsMax >= 1 && settings.pendingRequestsMax >= 1, "writer limits must be positive")
        let database = try Database(path: path, options: options)
        // Each request runs in a savepoint inside the batch's transaction, so
        // SQLite first copies each page a request changes into a statement
        // journal, to be able to undo that request alone. Kept in memory
        // (1 KiB chunks, freed when the request's savepoint is released), a
        // copy costs a memcpy instead of a pwrite(2) to a temporary file. It
        // never holds more than the pages one request changes.
        try database.execute("PRAGMA temp_store = MEMORY")
        try prepare(database)
        self.settings = settings
        self.queue = RequestQueue(pendingMax: settings.pendingRequestsMax)
        let connection = ConnectionTransfer(database: database)
        let thread = Thread { [queue, statistics, finished, settings] in
            domicile_set_thread_name("domicile-writer")
            let loop = WriterLoop(database: connection.database, queue: queue, statistics: statistics,
                                  batchMax: settings.batchRequestsMax, beforeCommit: settings.beforeCommit,
                                  afterCommit: settings.afterCommit)
            loop.run()
            finished.signal()
        }
        thread.name = "domicile-writer"
        thread.start()
    }

    /// Runs `body` in the next batch. Returns once the batch's COMMIT is
    /// durable; throws what `body` threw (its changes rolled back), or the
    /// commit's error (nothing of this request committed).
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await enqueue(body, transactional: true)
    }

    /// Runs `body` on the writer's connection outside any transaction, after
    /// the writes queued before it have committed (e.g. a checkpoint, which
    /// cannot run inside a transaction). Writes are held while it runs, and
    /// those queued after it run after it.
    public func outsideTransaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await enqueue(body, transactional: false)
    }

    /// `outsideTransaction` for a caller that cannot wait (the region log's
    /// driver queueing the entries to apply): `completion` gets the error,
    /// or nil, on the writer thread. Not bounded by `pendingRequestsMax`
    /// (entries already committed must be applied, whatever the clients'
    /// load; the log bounds how many are outstanding). Returns false,
    /// running nothing, when the writer is closed.
    public func submitOutsideTransaction(_ body: @escaping @Sendable (Database) throws -> Void,
                                         completion: @escaping @Sendable ((any Error)?) -> Void) -> Bool {
        let request = PendingWrite(
            execute: { database in
                try body(database)
                return { completion(nil) }
            },
            fail: { completion($0) },
            transactional: false)
        return queue.enqueue(request, bounded: false) == nil
    }

    private func enqueue<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T, transactional: Bool) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let request = PendingWrite(
                execute: { database in
                    let value = try body(database)
                    return { continuation.resume(returning: value) }
                },
                fail: { continuation.resume(throwing: $0) },
                transactional: transactional)
            if let refusal = queue.enqueue(request) { continuation.resume(throwing: refusal) }
        }
    }

    public var currentStatistics: WriterStatistics { statistics.withLock { $0 } }

    /// Requests queued and not yet taken by the writer thread (tests use it
    /// to put requests in one batch).
    var queuedRequests: Int { queue.count }

    /// Stops taking requests, commits what is queued, and waits for the
    /// writer thread to close its connection.
    public func close() {
        if queue.close() { finished.wait() }
    }

    deinit { close() }
}

/// Counters for `/metrics`: how many commits, how many requests they carried,
/// and the distribution of batch sizes (power-of-two buckets).
public struct WriterStatistics: Sendable {
    public static let batchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    public private(set) var commits = 0
    public private(set) var committedRequests = 0
    public private(set) var failedRequests = 0
    /// `batchSizeCounts[i]` counts batches of size ≤ `batchSizeBuckets[i]`
    /// and > the previous bucket (not cumulative).
    public private(set) var batchSizeCounts = [Int](repeating: 0, count: batchSizeBuckets.count + 1)
    /// True from a write that failed because the disk is full until the
    /// disk takes a write again (the node is then not ready: `/readyz`).
    /// The disk takes a write when a commit writes pages to the WAL in a
    /// batch none of whose requests failed for a full disk. A commit that
    /// writes nothing (the retention sweeper's idle pass every minute)
    /// proves nothing about free space, and neither does a small write that
    /// fit in pages the WAL already held, beside one the disk just refused.
    public private(set) var diskFull = false

    mutating func recordCommit(size: Int, diskTookWrite: Bool) {
        if diskTookWrite { diskFull = false }
        commits += 1
        committedRequests += size
        let bucket = Self.batchSizeBuckets.firstIndex { size <= $0 } ?? Self.batchSizeBuckets.count
        batchSizeCounts[bucket] += 1
    }

    mutating func recordFailures(_ count: Int, diskFull: Bool) {
        failedRequests += count
        if diskFull { self.diskFull = true }
    }
}

/// One queued write: `execute` runs the caller's body on the writer's
/// connection and returns the resumption to call after COMMIT; `fail`
/// resumes the caller with an error.
struct PendingWrite: Sendable {
    let execute: @Sendable (Database) throws -> @Sendable () -> Void
    let fail: @Sendable (any Error) -> Void
    /// False for work that must run outside a transaction, after the batch commits.
    var transactional = true
}

/// The requests waiting for the writer thread, guarded by a condition variable.
private final class RequestQueue: @unchecked Sendable {
    // Every stored property below is read and written only while holding `condition`.
    private let condition = NSCondition()
    private var pending: [PendingWrite] = []
    private var closed = false
    private let pendingMax: Int

    init(pendingMax: Int) { self.pendingMax = pendingMax }

    /// Queues `request`, or returns why it cannot be.
    func enqueue(_ request: PendingWrite, bounded: Bool = true) -> (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        if closed { return StorageFailure.writerClosed }
        if bounded && pending.count >= pendingMax { return StorageFailure.overloaded }
        pending.append(request)
        condition.signal()
        return nil
    }

    /// Blocks until requests are queued; nil once closed and drained.
    func takeBatch(max: Int) -> [PendingWrite]? {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && !closed { condition.wait() }
        if pending.isEmpty { return nil }
        if pending.count <= max {
            defer { pending = [] }
            return pending
        }
        let batch = Array(pending.prefix(max))
        pending.removeFirst(max)
        return batch
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Returns false if it was already closed.
    func close() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return false }
        closed = true
        condition.broadcast()
        return true
    }
}

/// Hands the writer's connection to the writer thread. The creating thread
/// never touches it again after `init` returns.
private struct ConnectionTransfer: @unchecked Sendable {
    let database: Database
}

/// The body of the writer thread.
private struct WriterLoop {
    let database: Database
    let queue: RequestQueue
    let statistics: Locked<WriterStatistics>
    let batchMax: Int
    let beforeCommit: (@Sendable (Changeset, Database) throws -> Void)?
    let afterCommit: (@Sendable (_ committed: Bool) -> Void)?

    /// Takes what is queued and runs it in queue order: each run of
    /// transactional requests as one batch, each other request on its own
    /// between them.
    func run() {
        while let batch = queue.takeBatch(max: batchMax) {
            var start = batch.startIndex
            while start < batch.endIndex {
                guard batch[start].transactional else {
                    runOutsideTransaction(batch[start])
                    start += 1
                    continue
                }
                let end = batch[start...].firstIndex { !$0.transactional } ?? batch.endIndex
                commit(Array(batch[start..<end]))
                start = end
            }
        }
    }

    private func runOutsideTransaction(_ request: PendingWrite) {
        do {
            try request.execute(database)()
        } catch {
            fail([request], error)
        }
    }

    private func commit(_ batch: [PendingWrite]) {
        let pagesWrittenBefore = database.pagesWritten
        let capture: ChangeCapture?
        do {
            capture = try beforeCommit.map { _ in try database.captureChanges() }
            try database.execute("BEGIN IMMEDIATE")
        } catch {
            fail(batch, error)
            return
        }
        var diskRefusedWrite = false
        var succeeded: [(request: PendingWrite, resume: @Sendable () -> Void)] = []
        succeeded.reserveCapacity(batch.count)
        for (index, request) in batch.enumerated() {
            do {
                try database.execute("SAVEPOINT request")
                let resume = try request.execute(database)
                try database.execute("RELEASE request")
                succeeded.append((request, resume))
            } catch {
                fail([request], error)
                diskRefusedWrite = diskRefusedWrite || StorageError.isDiskFull(error)
                if database.isInTransaction {
                    try? database.execute("ROLLBACK TO request")
                    try? database.execute("RELEASE request")
                    continue
                }
                // SQLite rolled the whole transaction back (SQLITE_FULL,
                // SQLITE_IOERR, …): earlier requests are gone too. Fail them
                // (none was acknowledged) and start over with the rest.
                fail(succeeded.map(\.request), StorageFailure.batchAborted(cause: error))
                succeeded.removeAll()
                do {
                    try database.execute("BEGIN IMMEDIATE")
                } catch {
                    fail(Array(batch[(index + 1)...]), error)
                    return
                }
            }
        }
        var hookReturned = false
        do {
            if let capture, let beforeCommit {
                try beforeCommit(try capture.changeset(), database)
                hookReturned = true
            }
            try database.execute("COMMIT")
        } catch {
            if database.isInTransaction { try? database.execute("ROLLBACK") }
            if hookReturned { afterCommit?(false) }
            fail(succeeded.map(\.request), error)
            return
        }
        if hookReturned { afterCommit?(true) }
        if !succeeded.isEmpty {
            let diskTookWrite = !diskRefusedWrite && database.pagesWritten != pagesWrittenBefore
            statistics.withLock { $0.recordCommit(size: succeeded.count, diskTookWrite: diskTookWrite) }
        }
        for entry in succeeded { entry.resume() }
    }

    private func fail(_ requests: [PendingWrite], _ error: any Error) {
        guard !requests.isEmpty else { return }
        statistics.withLock { $0.recordFailures(requests.count, diskFull: StorageError.isDiskFull(error)) }
        for request in requests { request.fail(error) }
    }
}
