@testable import DomicileConsensus
import DomicileModel
import XCTest

/// The state machine the simulated shell applies the log to: how far it has
/// applied, and a hash chain over what it applied, so two nodes' states are
/// compared in one step. Its snapshot payload is those 16 bytes.
struct AppliedState: Equatable {
    var index: UInt64 = 0
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func apply(_ entry: LogEntry) {
        index = entry.index
        hash = Self.mix(hash, entry.index)
        hash = Self.mix(hash, entry.term)
        if case .command(let data) = entry.payload { for byte in data { hash = Self.mix(hash, UInt64(byte)) } }
    }

    var payload: [UInt8] {
        var writer = BinaryWriter()
        writer.write(index)
        writer.write(hash)
        return writer.bytes
    }

    init() {}

    init(payload: [UInt8]) throws {
        guard !payload.isEmpty else { return }
        var reader = BinaryReader(payload, what: "applied state")
        index = try reader.readUInt64()
        hash = try reader.readUInt64()
    }

    private static func mix(_ hash: UInt64, _ value: UInt64) -> UInt64 { (hash ^ value) &* 0x0000_0100_0000_01B3 }
}

/// A violated invariant: the seed that found it and what broke.
struct SafetyViolation: Error, CustomStringConvertible {
    var description: String
}

/// A region of simulated nodes around real `RaftNode`s: each node's shell
/// persists a `Ready` to its simulated disk, then sends, then applies, then
/// advances, exactly as the contract says; every message goes through the
/// codec. The network is whatever the caller makes of `inFlight`. Safety is
/// checked as the run goes (`SafetyChecker`).
final class SimulatedRegion {
    let settings: RaftSettings
    private(set) var nodes: [NodeName: RaftNode] = [:]
    private(set) var disks: [NodeName: PersistedState] = [:]
    private(set) var states: [NodeName: AppliedState] = [:]
    /// Messages sent and not yet delivered, oldest first.
    var inFlight: [RaftMessage] = []
    /// Read states each node has received, in order.
    private(set) var readStates: [NodeName: [ReadState]] = [:]
    var checker = SafetyChecker()
    /// Entries applied per node (index and payload), for tests that look.
    private(set) var appliedEntries: [NodeName: [LogEntry]] = [:]
    /// Called after a node's Ready is persisted and before its messages are
    /// sent; returning true crashes the node there.
    var crashAfterPersist: (NodeName) -> Bool = { _ in false }
    /// Called for each entry a node applies.
    var onApply: (NodeName, LogEntry) -> Void = { _, _ in }
    /// Keep `appliedEntries` (the unit tests read it; long runs do not).
    var recordsApplied = true

    init(voters: [NodeName], learners: [NodeName] = [], settings: RaftSettings = .testing, seed: UInt64 = 1) throws {
        self.settings = settings
        let membership = try Membership(voters: Set(voters), learners: Set(learners))
        for (offset, name) in (voters + learners).enumerated() {
            try add(name, membership: membership, seed: seed &+ UInt64(offset))
        }
    }

    /// A region whose nodes start from the given disks (to build a scenario).
    init(restoring disks: [NodeName: PersistedState], settings: RaftSettings = .testing) throws {
        self.settings = settings
        self.disks = disks
        for (offset, name) in disks.keys.sorted().enumerated() {
            names.append(name)
            try restart(name, seed: UInt64(offset))
        }
    }

    /// Starts a fresh node (`membership` `.empty` to join a running region).
    func add(_ name: NodeName, membership: Membership, seed: UInt64) throws {
        nodes[name] = try RaftNode(id: name, membership: membership, settings: settings, randomSeed: seed)
        states[name] = AppliedState()
        names.append(name)
        try process(name)
    }

    /// Every node ever started, up or crashed.
    private(set) var names: [NodeName] = []
    /// The nodes that are up.
    var live: [NodeName] { names.filter { nodes[$0] != nil } }
    func node(_ name: NodeName) -> RaftNode { nodes[name]! }

    // MARK: Crashes

    /// The node loses everything but its disk.
    func crash(_ name: NodeName) {
        nodes[name] = nil
        states[name] = nil
    }

    /// The node restarts from its disk alone.
    func restart(_ name: NodeName, seed: UInt64) throws {
        precondition(nodes[name] == nil)
        let disk = disks[name]!
        nodes[name] = try RaftNode(id: name, restoring: disk, settings: settings, randomSeed: seed)
        states[name] = try AppliedState(payload: disk.snapshot.payload)
        try process(name)
    }

    // MARK: Driving

    func tick(_ name: NodeName, times: Int = 1) throws {
        for _ in 0..<times {
            guard nodes[name] != nil else { return }
            nodes[name]!.tick()
            try process(name)
        }
    }

    func tickAll(times: Int = 1) throws {
        for _ in 0..<times { for name in live { try tick(name) } }
    }

    /// Delivers one message (through the codec) to its node, if it is up.
    func deliver(_ message: RaftMessage) throws {
        guard nodes[message.to] != nil else { return }
        let decoded = try RaftCodec.decodeMessage(RaftCodec.encode(message))
        guard decoded == message else { throw SafetyViolation(description: "codec round trip changed \(message.kind)") }
        nodes[message.to]!.step(decoded)
        try process(message.to)
    }

    /// Delivers every message, including those the deliveries send, until
    /// none is left or `filter` refuses the rest (refused ones are dropped).
    func deliverAll(filter: (RaftMessage) -> Bool = { _ in true }) throws {
        try deliverAll(through: { filter($0) ? $0 : nil })
    }

    /// The same through a network that may change or drop (nil) messages.
    func deliverAll(through network: (RaftMessage) -> RaftMessage?, roundsMax: Int = 10_000) throws {
        for _ in 0..<roundsMax {
            guard !inFlight.isEmpty else { return }
            if let message = network(inFlight.removeFirst()) { try deliver(message) }
        }
        throw SafetyViolation(description: "messages kept flowing for \(roundsMax) deliveries")
    }

    func propose(_ name: NodeName, _ data: [UInt8]) throws -> ProposalTicket {
        let ticket = try nodes[name]!.propose(data)
        try process(name)
        return ticket
    }

    func change(_ name: NodeName, _ change: MembershipChange) throws -> ProposalTicket {
        let ticket = try nodes[name]!.proposeMembershipChange(change)
        try process(name)
        return ticket
    }

    func transfer(_ name: NodeName, to target: NodeName) throws {
        try nodes[name]!.transferLeadership(to: target)
        try process(name)
    }

    func requestRead(_ name: NodeName, context: UInt64) throws {
        try nodes[name]!.requestRead(context: context)
        try process(name)
    }

    func compact(_ name: NodeName) throws {
        let state = states[name]!
        let snapshot = try nodes[name]!.compact(through: state.index, payload: state.payload)
        disks[name]!.snapshot = snapshot
        disks[name]!.entries.removeAll { $0.index <= snapshot.metadata.index }
    }

    /// The shell's loop: persist, send, apply, advance — until nothing is left.
    func process(_ name: NodeName) throws {
        while let node = nodes[name], node.hasReady {
            let ready = nodes[name]!.ready()
            try persist(ready, on: name)
            if crashAfterPersist(name) {
                crash(name)
                return
            }
            inFlight += ready.messages
            try apply(ready, on: name)
            nodes[name]!.advance(ready)
        }
        try checker.observe(nodes)
    }

    private func persist(_ ready: Ready, on name: NodeName) throws {
        if disks[name] == nil { disks[name] = PersistedState(hardState: HardState(), snapshot: ready.snapshot!, entries: []) }
        if let snapshot = ready.snapshot {
            disks[name]!.snapshot = snapshot
            disks[name]!.entries = []
        }
        if let first = ready.entries.first {
            try checker.persisting(ready.entries, after: disks[name]!, on: name)
            let snapshotIndex = disks[name]!.snapshot.metadata.index
            guard first.index > snapshotIndex, first.index <= snapshotIndex + UInt64(disks[name]!.entries.count) + 1 else {
                throw SafetyViolation(description: "\(name) was told to persist entry \(first.index) after a gap")
            }
            disks[name]!.entries.removeSubrange(Int(first.index - snapshotIndex - 1)...)
            disks[name]!.entries += ready.entries
        }
        if let hardState = ready.hardState { disks[name]!.hardState = hardState }
    }

    private func apply(_ ready: Ready, on name: NodeName) throws {
        if let snapshot = ready.snapshot {
            let restored = try AppliedState(payload: snapshot.payload)
            try checker.installed(restored, on: name)
            states[name] = restored
        }
        for entry in ready.committedEntries {
            guard entry.index == states[name]!.index + 1 else {
                throw SafetyViolation(description: "\(name) was told to apply \(entry.index) after \(states[name]!.index)")
            }
            states[name]!.apply(entry)
            if recordsApplied { appliedEntries[name, default: []].append(entry) }
            onApply(name, entry)
            try checker.applied(entry, state: states[name]!, on: name)
        }
        readStates[name, default: []] += ready.readStates
        try checker.read(ready.readStates, on: name)
    }
}
