/// What one batch of steps asks of the shell, in this order:
///
/// 1. persist `snapshot` (replacing the whole log and the applied state),
///    then `entries` (first deleting every stored entry at or after
///    `entries.first.index`), then `hardState` — durably;
/// 2. only then send `messages`;
/// 3. install `snapshot` and apply `committedEntries` in order, and hand
///    `readStates` to the reads that wait for them;
/// 4. call `advance(_:)` with this value.
public struct Ready: Hashable, Sendable {
    public var hardState: HardState?
    public var snapshot: Snapshot?
    public var entries: [LogEntry]
    public var messages: [RaftMessage]
    public var committedEntries: [LogEntry]
    public var readStates: [ReadState]

    public var isEmpty: Bool {
        hardState == nil && snapshot == nil && entries.isEmpty && messages.isEmpty && committedEntries.isEmpty && readStates.isEmpty
    }
}

/// A linearizable read may be served once the node has applied `index`.
public struct ReadState: Hashable, Sendable {
    /// The shell's id for the read, as given to `requestRead(context:)`.
    public var context: UInt64
    public var index: UInt64
}
