import DomicileModel

/// Why the machine refused a request of the shell. Nothing is changed when
/// one is thrown.
public enum RaftError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Only the leader takes proposals; the shell forwards to `leader`.
    case notLeader(leader: NodeName?)
    /// No leader is known (an election is under way).
    case noLeader
    /// A leadership transfer is under way; proposals wait for it.
    case transferInProgress
    /// A membership change is still uncommitted, or the leader has not yet
    /// committed an entry of its own term.
    case membershipChangePending
    case invalidMembership(String)
    /// Too many entries are uncommitted (back-pressure) or too many reads wait.
    case overloaded(String)
    case entryTooLarge(bytes: Int)
    case invalidSettings(String)
    /// Persisted state that cannot be the output of this machine.
    case corruptState(String)
    case invalidCompaction(String)

    public var description: String {
        switch self {
        case .notLeader(let leader): return "not the leader (leader: \(leader?.rawValue ?? "unknown"))"
        case .noLeader: return "no leader is known"
        case .transferInProgress: return "a leadership transfer is under way"
        case .membershipChangePending: return "a membership change is pending"
        case .invalidMembership(let why): return "invalid membership change: \(why)"
        case .overloaded(let why): return "overloaded: \(why)"
        case .entryTooLarge(let bytes): return "entry of \(bytes) bytes is too large"
        case .invalidSettings(let why): return "invalid raft settings: \(why)"
        case .corruptState(let why): return "corrupt persisted raft state: \(why)"
        case .invalidCompaction(let why): return "invalid compaction: \(why)"
        }
    }
}
