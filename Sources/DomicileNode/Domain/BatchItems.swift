import DomicileStorage

/// The items of a batch write (`POST /v1/subjects/batch`,
/// `POST /v1/collections/{name}/vectors/batch`): each checked and stored
/// as its single call would be, all in one write transaction (one
/// region-log entry, one fsync), an item refused undone alone while the
/// others commit (`runAll`; docs/DECISIONS.md, "Batch writes: per-item
/// results in one transaction").
enum BatchItems {
    /// Items in one batch at most; else 422 `batch_too_large`.
    static func checkCount(_ count: Int, field: String, services: NodeServices) throws(DomainError) {
        let limit = services.configuration.limits.batchItemsMax
        guard count >= 1 else { throw DomainError.invalid(field, "send 1 to \(limit) items per batch") }
        guard count <= limit else {
            throw DomainError(.invalid, code: "batch_too_large", detail: "\(field): at most \(limit) items per batch (limits.batch_items_max)")
        }
    }

    /// Runs a batch's items, `pass`, first without a savepoint per item:
    /// each would journal again every page its item changes (SQLite's
    /// statement journal: in a load of 1 000-item batches, 2.7 times as many
    /// page writes as the WAL's; docs/BENCHMARKS.md). `pass` runs each item
    /// through the `ItemRunner` it is given. An item refused in the middle
    /// of its writes rolls the whole pass back, and `pass` runs again with
    /// a savepoint per item, so that only that item's writes are undone.
    /// `pass` must keep its results to itself: the first pass's are dropped.
    /// A refusal checked before an item writes (its subject, its consent)
    /// is no reason for a second pass: check it outside the runner.
    /// Any other error is thrown with `batch_items` still open: it fails
    /// the writer's request, whose `ROLLBACK TO request` undoes the batch
    /// and cancels the savepoints inside it (`Writer`).
    static func runAll<R>(in database: Database, _ pass: (ItemRunner) throws -> R) throws -> R {
        try database.execute("SAVEPOINT batch_items")
        let value: R
        do {
            value = try pass(.bare)
        } catch is RefusedMidItem {
            try database.execute("ROLLBACK TO batch_items")
            value = try pass(.savepointPerItem(database))
        }
        try database.execute("RELEASE batch_items")
        return value
    }

    /// How `runAll` runs one item.
    enum ItemRunner {
        /// In the batch's savepoint only: a refusal ends the pass.
        case bare
        /// In a savepoint of its own (`run`).
        case savepointPerItem(Database)

        func callAsFunction<T>(_ body: () throws -> T) throws -> Result<T, DomainError> {
            switch self {
            case .savepointPerItem(let database):
                return try BatchItems.run(in: database, body)
            case .bare:
                do {
                    return .success(try body())
                } catch is DomainError {
                    throw RefusedMidItem()
                }
            }
        }
    }

    /// An item refused in a bare pass: not a `DomainError`, so that no
    /// caller's handling of refusals stops it on its way to `runAll`.
    struct RefusedMidItem: Error {}

    /// Runs one item's write in its own savepoint: its refusal (a
    /// `DomainError`) rolls back what it wrote and is returned as its
    /// result; any other failure is thrown and fails the whole batch.
    static func run<T>(in database: Database, _ body: () throws -> T) throws -> Result<T, DomainError> {
        try database.execute("SAVEPOINT batch_item")
        do {
            let value = try body()
            try database.execute("RELEASE batch_item")
            return .success(value)
        } catch let refusal as DomainError {
            try database.execute("ROLLBACK TO batch_item")
            try database.execute("RELEASE batch_item")
            return .failure(refusal)
        }
    }

}
