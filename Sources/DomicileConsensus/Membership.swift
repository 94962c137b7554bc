import DomicileModel

/// Who takes part in a region log: voters elect the leader and form the
/// quorums; learners receive the log but neither vote nor count.
///
/// A membership entry in the log carries the whole membership after its
/// change (not the change), so the configuration in force is simply the
/// latest membership entry of the log, or the snapshot's when the log holds
/// none. It takes effect as soon as it is appended (docs/CONSENSUS.md).
public struct Membership: Hashable, Sendable, CustomStringConvertible {
    /// More members than a region needs; keeps every decoded message bounded.
    public static let membersCountMax = 64

    public private(set) var voters: Set<NodeName>
    public private(set) var learners: Set<NodeName>

    public init(voters: Set<NodeName>, learners: Set<NodeName> = []) throws(RaftError) {
        guard voters.isDisjoint(with: learners) else { throw .invalidMembership("a node is both voter and learner") }
        guard voters.count + learners.count <= Self.membersCountMax else { throw .invalidMembership("too many members") }
        self.voters = voters
        self.learners = learners
    }

    /// No members: a node that joins a running region starts with this and
    /// learns the real membership from the leader's log or snapshot.
    public static let empty = Membership(unchecked: [], [])

    private init(unchecked voters: Set<NodeName>, _ learners: Set<NodeName>) {
        self.voters = voters
        self.learners = learners
    }

    public var members: Set<NodeName> { voters.union(learners) }
    public func contains(_ node: NodeName) -> Bool { voters.contains(node) || learners.contains(node) }

    /// The smallest number of voters that is a majority.
    public var quorum: Int { voters.count / 2 + 1 }

    /// The membership after one change, or why the change is not allowed.
    public func applying(_ change: MembershipChange) throws(RaftError) -> Membership {
        var next = self
        switch change {
        case .addLearner(let node):
            guard !contains(node) else { throw .invalidMembership("\(node) is already a member") }
            guard members.count < Self.membersCountMax else { throw .invalidMembership("too many members") }
            next.learners.insert(node)
        case .promote(let node):
            guard learners.contains(node) else { throw .invalidMembership("\(node) is not a learner") }
            next.learners.remove(node)
            next.voters.insert(node)
        case .remove(let node):
            guard contains(node) else { throw .invalidMembership("\(node) is not a member") }
            next.voters.remove(node)
            next.learners.remove(node)
            guard !next.voters.isEmpty else { throw .invalidMembership("a region keeps at least one voter") }
        }
        return next
    }

    public var description: String {
        "voters \(voters.sorted().map(\.rawValue)) learners \(learners.sorted().map(\.rawValue))"
    }
}

/// One membership change; a leader accepts one at a time.
public enum MembershipChange: Hashable, Sendable {
    /// Adds a node that receives the log without voting, so it catches up
    /// before it counts toward a quorum.
    case addLearner(NodeName)
    /// Makes a learner a voter.
    case promote(NodeName)
    /// Removes a voter or a learner (never the leader itself: transfer the
    /// leadership first).
    case remove(NodeName)
}
