import DomicileModel

/// The messages of the membership protocol. Raw values are wire type
/// numbers: append-only, never renumbered or reused (docs/FORMATS.md).
///
/// There is deliberately no message that carries personal data: the gossip
/// format can encode membership and nothing else.
public enum GossipMessage: Sendable, Equatable {
    /// Are you there? (direct probe)
    case ping(seq: UInt32, target: NodeName, source: NodeName)
    /// Please probe `target` for me and relay its ack (and a nack if it stays silent).
    case indirectPing(seq: UInt32, target: NodeName, targetAddress: String, requester: NodeName, requesterAddress: String)
    case ack(seq: UInt32, source: NodeName)
    /// Lifeguard: "I asked, it did not answer" — proof the relay itself is alive.
    case nack(seq: UInt32, source: NodeName)
    case alive(incarnation: UInt64, identity: MemberIdentity)
    case suspect(incarnation: UInt64, name: NodeName, accuser: NodeName)
    /// `accuser == name` means the member left gracefully.
    case dead(incarnation: UInt64, name: NodeName, accuser: NodeName)

    public enum Kind: UInt8, Sendable {
        case ping = 1
        case indirectPing = 2
        case ack = 3
        case nack = 4
        case alive = 5
        case suspect = 6
        case dead = 7
    }

    public var kind: Kind {
        switch self {
        case .ping: return .ping
        case .indirectPing: return .indirectPing
        case .ack: return .ack
        case .nack: return .nack
        case .alive: return .alive
        case .suspect: return .suspect
        case .dead: return .dead
        }
    }

    /// The member a state message is about (alive, suspect, dead).
    public var subject: NodeName? {
        switch self {
        case .alive(_, let identity): return identity.name
        case .suspect(_, let name, _), .dead(_, let name, _): return name
        default: return nil
        }
    }
}

/// One entry of a push-pull state exchange.
public struct MemberState: Sendable, Equatable {
    public let identity: MemberIdentity
    public let incarnation: UInt64
    public let status: MemberStatus

    public init(identity: MemberIdentity, incarnation: UInt64, status: MemberStatus) {
        self.identity = identity
        self.incarnation = incarnation
        self.status = status
    }
}

/// Which membership pool a packet belongs to. The value is the packet's pool
/// byte and part of its associated data. Append-only.
public enum Pool: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The nodes of one region (LAN timings, region gossip key).
    case region = 1
    /// Every node of the federation (WAN timings, federation gossip key).
    case federation = 2

    public var description: String { self == .region ? "region" : "federation" }
}
