/// What a node's disk holds of its region log, exactly as its `Ready`s told
/// the shell to write it: the node restarts from this alone.
public struct PersistedState: Hashable, Sendable {
    public var hardState: HardState
    public var snapshot: Snapshot
    /// The entries after the snapshot, in order.
    public var entries: [LogEntry]

    public init(hardState: HardState, snapshot: Snapshot, entries: [LogEntry]) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }
}
