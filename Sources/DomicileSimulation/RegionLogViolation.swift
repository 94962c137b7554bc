/// A broken invariant of the region log found by the simulator: which
/// property, and what broke.
public struct RegionLogViolation: Error, CustomStringConvertible, Sendable {
    public enum Property: String, Sendable {
        /// Two leaders in one term.
        case electionSafety = "election safety"
        /// Two entries with the same index and term differ, or follow different terms.
        case logMatching = "log matching"
        /// A new leader lacks a committed entry.
        case leaderCompleteness = "leader completeness"
        /// A node that held a committed entry overwrote it.
        case committedEntryKept = "committed entry kept"
        /// Two nodes applied different entries, or reached different states, at one index.
        case stateMachineSafety = "state machine safety"
        /// A read index below what was acknowledged before the read was asked for.
        case readSafety = "read safety"
        /// After healing, a member did not apply everything acknowledged.
        case acknowledgedApplied = "acknowledged proposals applied"
        /// The machine asked the shell for something impossible (a gap in
        /// the log, applying out of order), or refused a disk the shell kept
        /// as it was told to, or a message did not survive the codec.
        case shellContract = "shell contract"
    }

    public var property: Property
    public var detail: String

    public init(_ property: Property, _ detail: String) {
        self.property = property
        self.detail = detail
    }

    public var description: String { "\(property.rawValue): \(detail)" }

    /// The properties a correct Raft must never break, whatever the nemesis
    /// (the others can also mean the run was too short, or the shell wrong).
    public var isSafetyProperty: Bool {
        switch property {
        case .electionSafety, .logMatching, .leaderCompleteness, .committedEntryKept, .stateMachineSafety, .readSafety: true
        case .acknowledgedApplied, .shellContract: false
        }
    }
}
