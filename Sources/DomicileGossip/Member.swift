import DomicileModel

/// Who a member is. A node keeps its name across restarts; a restart gives it
/// a new boot id, and possibly new addresses.
///
/// Immutable and shared by reference: every node's view of a large cluster
/// holds one entry per member, and the identity is most of an entry (the
/// 10,000-node simulation holds 10^8 of them).
public final class MemberIdentity: Hashable, Sendable, CustomStringConvertible {
    public let name: NodeName
    public let region: RegionID
    public let bootID: UInt64
    /// Where it receives gossip (UDP) and push-pull (TCP, same port).
    public let gossipAddress: String
    /// Where its HTTP API listens, for clients redirected to it (421).
    public let httpAddress: String

    public init(name: NodeName, region: RegionID, bootID: UInt64, gossipAddress: String, httpAddress: String) {
        self.name = name
        self.region = region
        self.bootID = bootID
        self.gossipAddress = gossipAddress
        self.httpAddress = httpAddress
    }

    public static func == (lhs: MemberIdentity, rhs: MemberIdentity) -> Bool {
        lhs === rhs || (lhs.name == rhs.name && lhs.region == rhs.region && lhs.bootID == rhs.bootID
            && lhs.gossipAddress == rhs.gossipAddress && lhs.httpAddress == rhs.httpAddress)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(bootID)
    }

    public var description: String { "\(name)@\(gossipAddress)" }
}

public enum MemberStatus: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case alive = 1
    case suspect = 2
    case dead = 3
    /// Left gracefully: dead by its own word.
    case left = 4

    public var description: String {
        switch self {
        case .alive: return "alive"
        case .suspect: return "suspect"
        case .dead: return "dead"
        case .left: return "left"
        }
    }

    /// Counts as a member others should probe and gossip to.
    public var isLive: Bool { self == .alive || self == .suspect }
}

/// A member as one node sees it.
public struct Member: Sendable, Equatable {
    public var identity: MemberIdentity
    public var incarnation: UInt64
    public var status: MemberStatus
    /// When this node last changed the status (milliseconds, the instance's clock).
    public var statusChangedAt: Int64

    public var name: NodeName { identity.name }
}
