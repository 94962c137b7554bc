/// Where a snapshot stands in the log and the membership in force there.
public struct SnapshotMetadata: Hashable, Sendable {
    public var index: UInt64
    public var term: UInt64
    public var membership: Membership

    public init(index: UInt64, term: UInt64, membership: Membership) {
        self.index = index
        self.term = term
        self.membership = membership
    }
}

/// The applied state up to `metadata.index`, standing in for the log entries
/// it replaces. `payload` is opaque to the machine: the state itself, or a
/// reference the shell resolves (the node streams its SQLite backup in
/// chunks and sends only a reference here).
public struct Snapshot: Hashable, Sendable {
    public var metadata: SnapshotMetadata
    public var payload: [UInt8]

    public init(metadata: SnapshotMetadata, payload: [UInt8]) {
        self.metadata = metadata
        self.payload = payload
    }
}
