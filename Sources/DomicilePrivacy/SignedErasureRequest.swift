import DomicileCrypto
import DomicileModel

/// The erasure request as the origin node signed it: who must erase (the
/// expected regions and, in each, the nodes that must ack), by when, for
/// which link, under which policy.
public struct SignedErasureRequest: Sendable, Equatable {
    public let erasureID: String
    public let requestedAt: Timestamp
    public let dueAt: Timestamp
    public let jurisdiction: String
    public let originRegion: RegionID
    public let originNode: String
    public let policyVersion: Int64
    /// SHA-256 binding the request to its subject (docs/FORMATS.md), never the link itself.
    public let linkHash: [UInt8]
    /// Expected region → the nodes of it that must ack, sorted.
    public let expectedNodes: [RegionID: [String]]
    public let signature: [UInt8]
    public let publicKey: Ed25519PublicKey

    static let domain = "domicile/erasure-request/v1"

    public var expectedRegions: [RegionID] { expectedNodes.keys.sorted { utf8Order($0.rawValue, $1.rawValue) } }

    public init(erasureID: String, requestedAt: Timestamp, dueAt: Timestamp, jurisdiction: String, originRegion: RegionID,
                originNode: String, policyVersion: Int64, linkHash: [UInt8], expectedNodes: [RegionID: [String]],
                signature: [UInt8], publicKey: Ed25519PublicKey) {
        self.erasureID = erasureID
        self.requestedAt = requestedAt
        self.dueAt = dueAt
        self.jurisdiction = jurisdiction
        self.originRegion = originRegion
        self.originNode = originNode
        self.policyVersion = policyVersion
        self.linkHash = linkHash
        self.expectedNodes = expectedNodes.mapValues { $0.sorted(by: utf8Order) }
        self.signature = signature
        self.publicKey = publicKey
    }

    public static func signed(erasureID: String, requestedAt: Timestamp, dueAt: Timestamp, jurisdiction: String,
                              originRegion: RegionID, originNode: String, policyVersion: Int64, linkHash: [UInt8],
                              expectedNodes: [RegionID: [String]], key: Ed25519PrivateKey) -> SignedErasureRequest {
        let unsigned = SignedErasureRequest(erasureID: erasureID, requestedAt: requestedAt, dueAt: dueAt, jurisdiction: jurisdiction,
                                            originRegion: originRegion, originNode: originNode, policyVersion: policyVersion,
                                            linkHash: linkHash, expectedNodes: expectedNodes, signature: [], publicKey: key.publicKey)
        return unsigned.with(signature: key.signature(for: unsigned.canonicalEncoding))
    }

    func with(signature: [UInt8]) -> SignedErasureRequest {
        SignedErasureRequest(erasureID: erasureID, requestedAt: requestedAt, dueAt: dueAt, jurisdiction: jurisdiction,
                             originRegion: originRegion, originNode: originNode, policyVersion: policyVersion, linkHash: linkHash,
                             expectedNodes: expectedNodes, signature: signature, publicKey: publicKey)
    }

    /// The signed bytes (docs/FORMATS.md, "Erasure certificate").
    public var canonicalEncoding: [UInt8] {
        var writer = BinaryWriter(capacity: 256)
        writer.write32(string: Self.domain)
        writer.write32(string: erasureID)
        writer.write(requestedAt.milliseconds)
        writer.write(dueAt.milliseconds)
        writer.write32(string: jurisdiction)
        writer.write32(string: originRegion.rawValue)
        writer.write32(string: originNode)
        writer.write(policyVersion)
        writer.write32(prefixed: linkHash)
        writer.write(UInt32(clamping: expectedNodes.count))
        for region in expectedRegions {
            let nodes = expectedNodes[region]!
            writer.write32(string: region.rawValue)
            writer.write(UInt32(clamping: nodes.count))
            for node in nodes { writer.write32(string: node) }
        }
        return writer.bytes
    }

    /// The link hash of a subject whose federation link is known: SHA-256
    /// over the domain, the link key version and the link.
    public static func linkHash(link: [UInt8], version: UInt32) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64)
        writer.write32(string: "domicile/erasure-link/v1")
        writer.write(version)
        writer.write32(prefixed: link)
        return SHA256.hash(writer.bytes)
    }

    /// The link hash of a request by pid for a subject not held here (its link unknown).
    public static func linkHash(pid: PID) -> [UInt8] {
        var writer = BinaryWriter(capacity: 80)
        writer.write32(string: "domicile/erasure-pid/v1")
        writer.write32(string: pid.rawValue)
        return SHA256.hash(writer.bytes)
    }

    /// What every ack names to say which request it answers.
    public var hash: [UInt8] { SHA256.hash(canonicalEncoding) }

    public var isValid: Bool { publicKey.isValidSignature(signature, for: canonicalEncoding) }
}

/// The order of every sorted list and map in a signed encoding: by UTF-8
/// bytes (Swift's `<` on strings compares Unicode scalars after normalization).
func utf8Order(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

extension BinaryWriter {
    /// A u32-length-prefixed byte string: no field a certificate can hold
    /// (its file is at most 1 MiB) reaches the limit, so bad input never traps.
    mutating func write32<Bytes: Collection<UInt8>>(prefixed value: Bytes) {
        write(UInt32(clamping: value.count))
        write(raw: value)
    }

    /// A u32-length-prefixed UTF-8 string.
    mutating func write32(string value: String) { write32(prefixed: Array(value.utf8)) }
}
