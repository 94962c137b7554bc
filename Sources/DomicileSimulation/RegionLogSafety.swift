import DomicileConsensus
import DomicileModel

/// Raft's safety properties, checked as a simulated run goes:
/// election safety (at most one leader per term), log matching (two entries
/// with the same index and term hold the same payload and follow the same
/// term), leader completeness (a new leader holds every committed entry),
/// state machine safety (every node applies the same entry, and reaches the
/// same state, at each index), and no read index below what was
/// acknowledged before the read was asked for. `SimulatedRegion` calls it
/// after every step of every node; a broken property throws a
/// `RegionLogViolation`.
public struct RegionLogSafety {
    public init() {}

    private struct EntryKey: Hashable {
        var index: UInt64
        var term: UInt64
    }

    private struct EntryFacts: Equatable {
        var payload: LogEntry.Payload
        var previousTerm: UInt64?
    }

    private var leaders: [UInt64: NodeName] = [:]
    /// Terms that had a leader.
    public var electionsWon: Int { leaders.count }
    private var entries: [EntryKey: EntryFacts] = [:]
    /// Committed entries: index to term; and the state after applying each.
    public private(set) var committedTerms: [UInt64: UInt64] = [:]
    private var statesAt: [UInt64: AppliedState] = [:]
    public private(set) var highestCommitted: UInt64 = 0
    /// Per read context, the highest index acknowledged before it was asked.
    public var readFloors: [UInt64: UInt64] = [:]

    public mutating func observe(_ nodes: [NodeName: RaftNode]) throws {
        for (name, node) in nodes where node.role == .leader {
            if let known = leaders[node.term] {
                guard known == name else { throw RegionLogViolation(.electionSafety, "two leaders in term \(node.term): \(known) and \(name)") }
                continue
            }
            leaders[node.term] = name
            try checkCompleteness(of: node)
        }
    }

    private func checkCompleteness(of leader: RaftNode) throws {
        for (index, term) in committedTerms where index >= leader.firstIndex {
            guard leader.term(at: index) == term else {
                throw RegionLogViolation(.leaderCompleteness, "leader \(leader.id) of term \(leader.term) lacks committed entry \(index) of term \(term)")
            }
        }
    }

    public mutating func persisting(_ new: [LogEntry], after disk: PersistedState, on name: NodeName) throws {
        func stored(_ index: UInt64) -> LogEntry? {
            let snapshotIndex = disk.snapshot.metadata.index
            guard index > snapshotIndex, index - snapshotIndex <= UInt64(disk.entries.count) else { return nil }
            return disk.entries[Int(index - snapshotIndex - 1)]
        }
        var previousTerm: UInt64? = nil
        if let first = new.first {
            previousTerm = first.index - 1 == disk.snapshot.metadata.index ? disk.snapshot.metadata.term : stored(first.index - 1)?.term
        }
        for entry in new {
            // A lagging follower may take a stale entry where another one
            // was committed (it will be replaced); a node that holds the
            // committed entry must never lose it.
            if let committed = committedTerms[entry.index], committed != entry.term,
               let replaced = stored(entry.index), replaced.term == committed {
                throw RegionLogViolation(.committedEntryKept, "\(name) overwrites committed entry \(entry.index) (term \(committed)) with term \(entry.term)")
            }
            let key = EntryKey(index: entry.index, term: entry.term)
            let facts = EntryFacts(payload: entry.payload, previousTerm: previousTerm)
            if let known = entries[key] {
                guard known.payload == facts.payload else {
                    throw RegionLogViolation(.logMatching, "entry \(entry.index) of term \(entry.term) differs on \(name)")
                }
                if let a = known.previousTerm, let b = facts.previousTerm, a != b {
                    throw RegionLogViolation(.logMatching, "entries before \(entry.index) of term \(entry.term) differ on \(name)")
                }
            } else {
                entries[key] = facts
            }
            previousTerm = entry.term
        }
    }

    public mutating func applied(_ entry: LogEntry, state: AppliedState, on name: NodeName) throws {
        if let term = committedTerms[entry.index], term != entry.term {
            throw RegionLogViolation(.stateMachineSafety, "\(name) applies term \(entry.term) at \(entry.index), another applied term \(term)")
        }
        committedTerms[entry.index] = entry.term
        try installed(state, on: name)
        highestCommitted = max(highestCommitted, entry.index)
    }

    public mutating func installed(_ state: AppliedState, on name: NodeName) throws {
        if let known = statesAt[state.index], known != state {
            throw RegionLogViolation(.stateMachineSafety, "\(name)'s state at \(state.index) differs from another node's")
        }
        statesAt[state.index] = state
    }

    public func state(at index: UInt64) -> AppliedState? { statesAt[index] }

    public mutating func read(_ states: [ReadState], on name: NodeName) throws {
        for state in states {
            guard let floor = readFloors[state.context] else { continue }
            guard state.index >= floor else {
                throw RegionLogViolation(.readSafety, "read \(state.context) on \(name) got index \(state.index), below \(floor) acknowledged before it")
            }
        }
    }
}
