import DomicileCrypto
import DomicileModel

/// The nodes a region channel talks to, by name, with the Ed25519 public
/// keys trusted for each (more than one while a node's key is rotated).
/// The region log's membership will maintain it; until then the caller
/// passes it in.
public struct NodeRoster: Sendable {
    public var keys: [NodeName: [Ed25519PublicKey]]

    public init(_ keys: [NodeName: [Ed25519PublicKey]] = [:]) {
        self.keys = keys
    }

    public func knows(_ name: NodeName) -> Bool { !(keys[name] ?? []).isEmpty }

    /// Whether one of `name`'s trusted keys made `signature` over `message`.
    public func verifies(_ signature: [UInt8], by name: NodeName, over message: [UInt8]) -> Bool {
        (keys[name] ?? []).contains { $0.isValidSignature(signature, for: message) }
    }
}
