/// The kinds of key a keyring holds (DESIGN.md section 6). Raw values are
/// stored in sealed keyrings: append-only, never renumber.
public enum KeyKind: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// HMAC-SHA256 key that turns identifiers into pids.
    case pseudonym = 1
    /// AES-256-GCM key for encryption at rest (and for wrapping subject keys).
    case data = 2
    /// AES-256-GCM key of the region's gossip pool.
    case regionGossip = 3
    /// AES-256-GCM key of the federation's gossip pool.
    case federationGossip = 4
    /// HMAC-SHA256 key that turns identifiers into federation links.
    case federationLink = 5
    /// Ed25519 seed of this node's signing key.
    case nodeSigning = 6

    /// Who shares a key: every node of a region, every node of the
    /// federation, or one node only.
    public enum Scope: String, Sendable {
        case region, federation, node
    }

    public var scope: Scope {
        switch self {
        case .pseudonym, .data, .regionGossip: return .region
        case .federationGossip, .federationLink: return .federation
        case .nodeSigning: return .node
        }
    }

    public var name: String {
        switch self {
        case .pseudonym: return "pseudonym"
        case .data: return "data"
        case .regionGossip: return "region-gossip"
        case .federationGossip: return "federation-gossip"
        case .federationLink: return "federation-link"
        case .nodeSigning: return "node-signing"
        }
    }

    public init?(name: String) {
        guard let kind = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = kind
    }

    public var description: String { name }

    /// All kinds use 32 bytes of key material (HMAC-SHA256 keys of the hash
    /// length, AES-256 keys, Ed25519 seeds).
    public var byteCount: Int { 32 }
}
