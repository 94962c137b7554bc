import DomicileConsensus
import DomicileModel

/// A region of simulated nodes around real `RaftNode`s. Each node's shell
/// does what the node's does, in its order: write the `Ready` to its log
/// store and sync it (one transaction: `raft.sqlite`), send, apply (each
/// entry one transaction of its database, with the applied index), advance.
/// Both stores are `SimulatedDisk`s; a crash (`crash`, or `crashPoint`
/// inside the loop) keeps only what was synced, and a restart rebuilds the
/// node from its two stores alone. Every message goes through the codec. The
/// network is whatever the caller makes of `inFlight`. Safety is checked as
/// the run goes (`RegionLogSafety`); a broken property throws a
/// `RegionLogViolation`.
public final class SimulatedRegion {
    public let settings: RaftSettings
    public private(set) var nodes: [NodeName: RaftNode] = [:]
    /// Each node's `raft.sqlite`: what its `Ready`s told it to persist.
    public private(set) var logStores: [NodeName: SimulatedDisk<PersistedState>] = [:]
    /// Each node's database: the applied state and its applied index.
    public private(set) var databases: [NodeName: SimulatedDisk<AppliedState>] = [:]
    /// Messages sent and not yet delivered, oldest first.
    public var inFlight: [RaftMessage] = []
    /// Read states each node has received, in order.
    public private(set) var readStates: [NodeName: [ReadState]] = [:]
    public var checker = RegionLogSafety()
    /// Entries applied per node, for tests that look (when `recordsApplied`).
    public private(set) var appliedEntries: [NodeName: [LogEntry]] = [:]
    public var recordsApplied = true
    /// Asked once per `Ready` of a node whose log store exists: where, if
    /// anywhere, the node crashes while its shell handles that `Ready`.
    public var crashPoint: (NodeName) -> ShellCrashPoint? = { _ in nil }
    /// Called for each entry a node applies (after its transaction).
    public var onApply: (NodeName, LogEntry) -> Void = { _, _ in }
    /// Crashes so far (called or injected), of which inside the shell's
    /// loop (`crashPoint`), and restarts.
    public private(set) var crashCount = 0
    public private(set) var shellCrashCount = 0
    public private(set) var restartCount = 0

    public init(voters: [NodeName], learners: [NodeName] = [], settings: RaftSettings = .testing, seed: UInt64 = 1) throws {
        self.settings = settings
        let membership = try Membership(voters: Set(voters), learners: Set(learners))
        for (offset, name) in (voters + learners).enumerated() {
            try add(name, membership: membership, seed: seed &+ UInt64(offset))
        }
    }

    /// A region whose nodes start from the given log stores, with empty
    /// databases (to build a scenario).
    public init(restoring disks: [NodeName: PersistedState], settings: RaftSettings = .testing) throws {
        self.settings = settings
        for (offset, name) in disks.keys.sorted().enumerated() {
            logStores[name] = SimulatedDisk(disks[name]!)
            databases[name] = SimulatedDisk(AppliedState())
            names.append(name)
            try restart(name, seed: UInt64(offset))
        }
    }

    /// Starts a fresh node (`membership` `.empty` to join a running region).
    /// Its first `Ready` (its starting snapshot) is handled without a crash,
    /// as `cluster init` does before the node serves.
    public func add(_ name: NodeName, membership: Membership, seed: UInt64) throws {
        nodes[name] = try RaftNode(id: name, membership: membership, settings: settings, randomSeed: seed)
        databases[name] = SimulatedDisk(AppliedState())
        names.append(name)
        try process(name)
    }

    /// Every node ever started, up or crashed.
    public private(set) var names: [NodeName] = []
    /// The nodes that are up.
    public var live: [NodeName] { names.filter { nodes[$0] != nil } }
    public func node(_ name: NodeName) -> RaftNode { nodes[name]! }
    /// What each node's log store holds (unsynced writes included).
    public var disks: [NodeName: PersistedState] { logStores.mapValues(\.contents) }
    /// The applied state of each node that is up.
    public var states: [NodeName: AppliedState] {
        Dictionary(uniqueKeysWithValues: live.compactMap { name in databases[name].map { (name, $0.contents) } })
    }
    public func state(of name: NodeName) -> AppliedState? { nodes[name] == nil ? nil : databases[name]?.contents }

    // MARK: Crashes

    /// The node stops. Its stores keep what was synced and, of what was
    /// not, the first `unsyncedSurviving` transactions.
    public func crash(_ name: NodeName, unsyncedSurviving: Int = 0) {
        guard nodes[name] != nil else { return }
        nodes[name] = nil
        logStores[name]?.crash(surviving: unsyncedSurviving)
        databases[name]?.crash(surviving: unsyncedSurviving)
        crashCount += 1
    }

    /// The node restarts from its stores alone, as the node's shell does: a
    /// snapshot persisted but not installed before the crash (the database
    /// is behind the log store's snapshot) is installed first; then the
    /// machine restarts from the log store with the database's applied index.
    public func restart(_ name: NodeName, seed: UInt64) throws {
        precondition(nodes[name] == nil)
        let disk = logStores[name]!.synced
        if databases[name]!.synced.index < disk.snapshot.metadata.index {
            let installed = try AppliedState(payload: disk.snapshot.payload)
            try checker.installed(installed, on: name)
            databases[name]!.write(installed)
            databases[name]!.sync()
        }
        do {
            nodes[name] = try RaftNode(id: name, restoring: disk, applied: databases[name]!.synced.index, settings: settings, randomSeed: seed)
        } catch {
            throw RegionLogViolation(.shellContract, "\(name) cannot restart from its stores: \(error)")
        }
        restartCount += 1
        try process(name)
    }

    // MARK: Driving

    public func tick(_ name: NodeName, times: Int = 1) throws {
        for _ in 0..<times {
            guard nodes[name] != nil else { return }
            nodes[name]!.tick()
            try process(name)
        }
    }

    public func tickAll(times: Int = 1) throws {
        for _ in 0..<times { for name in live { try tick(name) } }
    }

    /// Delivers one message (through the codec) to its node, if it is up.
    public func deliver(_ message: RaftMessage) throws {
        guard nodes[message.to] != nil else { return }
        let decoded = try RaftCodec.decodeMessage(RaftCodec.encode(message))
        guard decoded == message else { throw RegionLogViolation(.shellContract, "codec round trip changed \(message.kind)") }
        nodes[message.to]!.step(decoded)
        try process(message.to)
    }

    /// Delivers every message, including those the deliveries send, until
    /// none is left or `filter` refuses the rest (refused ones are dropped).
    public func deliverAll(filter: (RaftMessage) -> Bool = { _ in true }) throws {
        try deliverAll(through: { filter($0) ? $0 : nil })
    }

    /// The same through a network that may change or drop (nil) messages.
    public func deliverAll(through network: (RaftMessage) -> RaftMessage?, roundsMax: Int = 10_000) throws {
        for _ in 0..<roundsMax {
            guard !inFlight.isEmpty else { return }
            if let message = network(inFlight.removeFirst()) { try deliver(message) }
        }
        throw RegionLogViolation(.shellContract, "messages kept flowing for \(roundsMax) deliveries")
    }

    public func propose(_ name: NodeName, _ data: [UInt8]) throws -> ProposalTicket {
        let ticket = try nodes[name]!.propose(data)
        try process(name)
        return ticket
    }

    public func change(_ name: NodeName, _ change: MembershipChange) throws -> ProposalTicket {
        let ticket = try nodes[name]!.proposeMembershipChange(change)
        try process(name)
        return ticket
    }

    public func transfer(_ name: NodeName, to target: NodeName) throws {
        try nodes[name]!.transferLeadership(to: target)
        try process(name)
    }

    public func requestRead(_ name: NodeName, context: UInt64) throws {
        try nodes[name]!.requestRead(context: context)
        try process(name)
    }

    /// The shell snapshots its applied state and replaces the log entries it
    /// covers (one synced transaction of the log store).
    public func compact(_ name: NodeName) throws {
        let state = databases[name]!.contents
        let snapshot = try nodes[name]!.compact(through: state.index, payload: state.payload)
        var disk = logStores[name]!.contents
        disk.snapshot = snapshot
        disk.entries.removeAll { $0.index <= snapshot.metadata.index }
        logStores[name]!.write(disk)
        logStores[name]!.sync()
    }

    // MARK: The shell's loop

    /// Persist (write, sync), send, apply, advance — until nothing is left,
    /// or the node crashes where `crashPoint` says.
    public func process(_ name: NodeName) throws {
        while let node = nodes[name], node.hasReady {
            let ready = nodes[name]!.ready()
            let crashing = logStores[name] == nil ? nil : crashPoint(name)
            try write(ready, on: name)
            if case .beforeSync(let survives) = crashing { return crashInside(name, unsyncedSurviving: survives ? 1 : 0) }
            logStores[name]!.sync()
            if crashing == .beforeSend { return crashInside(name) }
            inFlight += ready.messages
            if crashing == .beforeApply { return crashInside(name) }
            var transactionsMax = Int.max
            if case .whileApplying(let transactions) = crashing { transactionsMax = transactions }
            guard try apply(ready, on: name, transactionsMax: transactionsMax) else { return crashInside(name) }
            if crashing == .beforeAdvance { return crashInside(name) }
            nodes[name]!.advance(ready)
        }
        try checker.observe(nodes)
    }

    private func crashInside(_ name: NodeName, unsyncedSurviving: Int = 0) {
        shellCrashCount += 1
        crash(name, unsyncedSurviving: unsyncedSurviving)
    }

    /// Writes the `Ready`'s snapshot, entries and hard state as one
    /// transaction of the log store (not yet synced).
    private func write(_ ready: Ready, on name: NodeName) throws {
        guard ready.snapshot != nil || !ready.entries.isEmpty || ready.hardState != nil else { return }
        guard var disk = logStores[name]?.contents ?? ready.snapshot.map({ PersistedState(hardState: HardState(), snapshot: $0, entries: []) }) else {
            throw RegionLogViolation(.shellContract, "\(name)'s first Ready carries no snapshot")
        }
        if let snapshot = ready.snapshot {
            disk.snapshot = snapshot
            disk.entries = []
        }
        if let first = ready.entries.first {
            try checker.persisting(ready.entries, after: disk, on: name)
            let snapshotIndex = disk.snapshot.metadata.index
            guard first.index > snapshotIndex, first.index <= snapshotIndex + UInt64(disk.entries.count) + 1 else {
                throw RegionLogViolation(.shellContract, "\(name) was told to persist entry \(first.index) after a gap")
            }
            disk.entries.removeSubrange(Int(first.index - snapshotIndex - 1)...)
            disk.entries += ready.entries
        }
        if let hardState = ready.hardState { disk.hardState = hardState }
        if logStores[name] == nil { logStores[name] = SimulatedDisk(disk) } else { logStores[name]!.write(disk) }
    }

    /// Installs the snapshot and applies the committed entries, each one
    /// synced transaction of the database; stops (returning false) after
    /// `transactionsMax` of them.
    private func apply(_ ready: Ready, on name: NodeName, transactionsMax: Int) throws -> Bool {
        var transactions = 0
        if let snapshot = ready.snapshot {
            guard transactions < transactionsMax else { return false }
            let restored = try AppliedState(payload: snapshot.payload)
            try checker.installed(restored, on: name)
            commit(restored, on: name)
            transactions += 1
        }
        for entry in ready.committedEntries {
            guard transactions < transactionsMax else { return false }
            var state = databases[name]!.contents
            guard entry.index == state.index + 1 else {
                throw RegionLogViolation(.shellContract, "\(name) was told to apply \(entry.index) after \(state.index)")
            }
            state.apply(entry)
            commit(state, on: name)
            transactions += 1
            if recordsApplied { appliedEntries[name, default: []].append(entry) }
            onApply(name, entry)
            try checker.applied(entry, state: state, on: name)
        }
        readStates[name, default: []] += ready.readStates
        try checker.read(ready.readStates, on: name)
        return true
    }

    private func commit(_ state: AppliedState, on name: NodeName) {
        databases[name]!.write(state)
        databases[name]!.sync()
    }
}
