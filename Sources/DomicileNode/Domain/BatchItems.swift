import DomicileStorage

/// The items of a batch write (`POST /v1/subjects/batch`,
/// `POST /v1/collections/{name}/vectors/batch`): each checked and stored
/// as its single call would be, all in one write transaction (one
/// region-log entry, one fsync), each in its own savepoint so that an item
/// refused rolls back alone and the others commit
/// (docs/DECISIONS.md, "Batch writes: per-item results in one transaction").
enum BatchItems {
    /// Items in one batch at most; else 422 `batch_too_large`.
    static func checkCount(_ count: Int, field: String, services: NodeServices) throws(DomainError) {
        let limit = services.configuration.limits.batchItemsMax
        guard count >= 1 else { throw DomainError.invalid(field, "send 1 to \(limit) items per batch") }
        guard count <= limit else {
            throw DomainError(.invalid, code: "batch_too_large", detail: "\(field): at most \(limit) items per batch (limits.batch_items_max)")
        }
    }

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
