import DomicileCrypto
import DomicileModel

/// What an ack vouches for.
public enum ErasureScope: String, Sendable, Equatable {
    /// The signing node's own store: a node without a region log holds only
    /// what it was sent, so each node of its region acks for itself.
    case node
    /// The region's one store, replicated by its log: signed by one of its
    /// nodes once every member of the log has applied the erasure and
    /// truncated its WAL, each confirming it with its own signed `node` ack
    /// (docs/DECISIONS.md, "Erasure in a region with a log").
    case region
}

/// What one node erased for one request, signed by that node.
public struct ErasureAck: Sendable, Equatable {
    public let erasureID: String
    /// The hash of the signed request this ack answers.
    public let requestHash: [UInt8]
    public let region: RegionID
    public let node: String
    public let scope: ErasureScope
    public let erasedAt: Timestamp
    /// Rows erased per table (`subjects`, `features`, …).
    public let counts: [String: Int64]
    public let linkHash: [UInt8]
    /// The WAL was checkpointed and truncated after the erasure.
    public let walTruncated: Bool
    public let policyVersion: Int64
    public let signature: [UInt8]
    public let publicKey: Ed25519PublicKey

    static let domain = "domicile/erasure-ack/v2"

    public init(erasureID: String, requestHash: [UInt8], region: RegionID, node: String, scope: ErasureScope, erasedAt: Timestamp,
                counts: [String: Int64], linkHash: [UInt8], walTruncated: Bool, policyVersion: Int64,
                signature: [UInt8], publicKey: Ed25519PublicKey) {
        self.erasureID = erasureID
        self.requestHash = requestHash
        self.region = region
        self.node = node
        self.scope = scope
        self.erasedAt = erasedAt
        self.counts = counts
        self.linkHash = linkHash
        self.walTruncated = walTruncated
        self.policyVersion = policyVersion
        self.signature = signature
        self.publicKey = publicKey
    }

    /// This node's ack for `request`: it answers the request's id, hash and link.
    public static func signed(for request: SignedErasureRequest, region: RegionID, node: String, scope: ErasureScope = .node,
                              erasedAt: Timestamp, counts: [String: Int64], walTruncated: Bool, policyVersion: Int64,
                              key: Ed25519PrivateKey) -> ErasureAck {
        let unsigned = ErasureAck(erasureID: request.erasureID, requestHash: request.hash, region: region, node: node, scope: scope,
                                  erasedAt: erasedAt, counts: counts, linkHash: request.linkHash, walTruncated: walTruncated,
                                  policyVersion: policyVersion, signature: [], publicKey: key.publicKey)
        return unsigned.with(signature: key.signature(for: unsigned.canonicalEncoding))
    }

    func with(signature: [UInt8]) -> ErasureAck {
        ErasureAck(erasureID: erasureID, requestHash: requestHash, region: region, node: node, scope: scope, erasedAt: erasedAt,
                   counts: counts, linkHash: linkHash, walTruncated: walTruncated, policyVersion: policyVersion,
                   signature: signature, publicKey: publicKey)
    }

    /// The signed bytes (docs/FORMATS.md, "Erasure certificate").
    public var canonicalEncoding: [UInt8] {
        var writer = BinaryWriter(capacity: 256)
        writer.write32(string: Self.domain)
        writer.write32(string: erasureID)
        writer.write32(prefixed: requestHash)
        writer.write32(string: region.rawValue)
        writer.write32(string: node)
        writer.write32(string: scope.rawValue)
        writer.write(erasedAt.milliseconds)
        writer.write32(prefixed: linkHash)
        writer.write(UInt8(walTruncated ? 1 : 0))
        writer.write(policyVersion)
        writer.write(UInt32(clamping: counts.count))
        for (table, count) in counts.sorted(by: { utf8Order($0.key, $1.key) }) {
            writer.write32(string: table)
            writer.write(count)
        }
        return writer.bytes
    }

    /// What the completion statement lists.
    public var hash: [UInt8] { SHA256.hash(canonicalEncoding) }

    public var isValid: Bool { publicKey.isValidSignature(signature, for: canonicalEncoding) }
}
