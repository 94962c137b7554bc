import DomicileCrypto
import DomicileModel

/// Who may speak for a region in the federation: every node of every
/// region, by name and Ed25519 public key, from the regions' roster files
/// (`federation.rosters`; `cluster init` lists every region's). It
/// authenticates the sender of each federation message (`FederationFrame`)
/// and the signers of erasure intents and acks, whichever region relays
/// them. The files are re-read when an unknown node signs, so a node added
/// with `cluster add-node` is known without a restart.
final class FederationTrust: Sendable {
    private struct Known: Sendable {
        let region: RegionID
        let key: Ed25519PublicKey
    }

    private let paths: [String]
    private let nodes: Locked<[String: Known]>

    /// Reads every roster; a file that cannot be read is an error at start.
    init(paths: [String]) throws {
        self.paths = paths
        nodes = Locked(try Self.load(paths))
    }

    private static func load(_ paths: [String]) throws -> [String: Known] {
        var nodes: [String: Known] = [:]
        for path in paths {
            let roster = try RegionRoster.load(path: path)
            for node in roster.nodes { nodes[node.name.rawValue] = Known(region: roster.region, key: node.publicKey) }
        }
        return nodes
    }

    /// The region and key of node `name`, re-reading the rosters once if it is unknown.
    private func known(_ name: String) -> Known? {
        if let known = nodes.withLock({ $0[name] }) { return known }
        guard let fresh = try? Self.load(paths) else { return nil }
        nodes.withLock { $0 = fresh }
        return fresh[name]
    }

    /// Whether `key` is the key of node `name` of `region`.
    func trusts(_ key: Ed25519PublicKey, node name: String, region: RegionID) -> Bool {
        guard let known = known(name) else { return false }
        return known.region == region && known.key.rawRepresentation == key.rawRepresentation
    }

    /// Whether `signature` over `message` is node `name`'s, and `name` a node of `region`.
    func isSigned(_ message: [UInt8], signature: [UInt8], by name: String, of region: RegionID) -> Bool {
        guard let known = known(name), known.region == region else { return false }
        return known.key.isValidSignature(signature, for: message)
    }
}

/// A federation message as it is sealed: the sending node's name, its
/// signature, and the payload (an envelope, or a list of answers)
/// (docs/FORMATS.md, "Federation transport"):
///
///     u8 name length · name (UTF-8) · signature (64) · payload
///
/// The signature covers a domain string (request or answer), the name and
/// the payload, so an answer cannot be replayed as a request, nor one
/// node's message passed off as another's.
enum FederationFrame {
    static let requestDomain = "domicile/federation/request/v1"
    static let answerDomain = "domicile/federation/answer/v1"
    static let signatureByteCount = 64

    struct Opened {
        let node: String
        let signature: [UInt8]
        let payload: [UInt8]

        func signedBytes(_ domain: String) -> [UInt8] { FederationFrame.signedBytes(domain, node: node, payload: payload) }
    }

    static func signedBytes(_ domain: String, node: String, payload: [UInt8]) -> [UInt8] {
        Array(domain.utf8) + [UInt8(node.utf8.count)] + Array(node.utf8) + payload
    }

    static func frame(_ payload: [UInt8], domain: String, node: NodeName, key: Ed25519PrivateKey) -> [UInt8] {
        let name = Array(node.rawValue.utf8)
        precondition(name.count <= 255, "a node name fits in a byte's length")
        return [UInt8(name.count)] + name + key.signature(for: signedBytes(domain, node: node.rawValue, payload: payload)) + payload
    }

    static func open(_ bytes: [UInt8]) -> Opened? {
        guard let length = bytes.first.map(Int.init), bytes.count >= 1 + length + signatureByteCount,
              let node = String(validating: bytes[1..<(1 + length)], as: UTF8.self) else { return nil }
        let signature = Array(bytes[(1 + length)..<(1 + length + signatureByteCount)])
        return Opened(node: node, signature: signature, payload: Array(bytes[(1 + length + signatureByteCount)...]))
    }
}
