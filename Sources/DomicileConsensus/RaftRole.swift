/// Where a node stands in the current term.
public enum RaftRole: String, Hashable, Sendable {
    case follower, preCandidate, candidate, leader
}
