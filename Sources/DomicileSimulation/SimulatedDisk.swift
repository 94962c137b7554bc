/// One durable store of a simulated node (its `raft.sqlite`, or its
/// database), with the semantics the shell relies on:
///
/// - a write is one transaction: it replaces the contents whole or not at all
///   (SQLite's WAL: a transaction whose frames are torn by a crash has no
///   valid commit frame, fails its checksum and is discarded at recovery, so
///   a torn transaction is a lost one — nothing can be half-written);
/// - a write is volatile until `sync()` (the WAL's fsync: `synchronous=FULL`
///   syncs at commit, which the shell models as write then sync);
/// - a crash keeps the synced contents and a prefix of the unsynced
///   transactions — any prefix, from none (power lost before the pages left
///   the cache) to all (a process crash leaves the page cache to the kernel).
///
/// What the process reads is `contents`, unsynced writes included.
public struct SimulatedDisk<Contents> {
    public private(set) var synced: Contents
    /// The contents after each unsynced transaction, oldest first.
    private var unsynced: [Contents] = []

    public init(_ contents: Contents) {
        synced = contents
    }

    public var contents: Contents { unsynced.last ?? synced }
    public var unsyncedCount: Int { unsynced.count }

    /// One transaction, after which the store holds `contents`.
    public mutating func write(_ contents: Contents) {
        unsynced.append(contents)
    }

    public mutating func sync() {
        if let last = unsynced.last { synced = last }
        unsynced = []
    }

    /// The node crashed: the first `surviving` unsynced transactions reached
    /// the disk whole, the rest are lost whole.
    public mutating func crash(surviving: Int) {
        let kept = min(max(surviving, 0), unsynced.count)
        if kept > 0 { synced = unsynced[kept - 1] }
        unsynced = []
    }
}
