import DomicileCrypto
import DomicileModel

// An erasure certificate is three kinds of signed statement (docs/FORMATS.md,
// "Erasure certificate"): the origin's signed REQUEST, one signed ACK per node
// that erased, and the origin's signed COMPLETION over the request and the
// acks. Every field a reader relies on is inside one of the signatures.

/// What an ack vouches for. Until the region log replicates a region's data,
/// a node can only vouch for itself: `node`. (A region-wide scope will come
/// with the region log; it is not accepted before.)
public enum ErasureScope: String, Sendable, Equatable {
    case node
}

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
    public static func signed(for request: SignedErasureRequest, region: RegionID, node: String, erasedAt: Timestamp,
                              counts: [String: Int64], walTruncated: Bool, policyVersion: Int64,
                              key: Ed25519PrivateKey) -> ErasureAck {
        let unsigned = ErasureAck(erasureID: request.erasureID, requestHash: request.hash, region: region, node: node, scope: .node,
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

/// The origin's signed statement that the request completed, at
/// `completedAt`, with exactly these acks.
public enum ErasureCompletion {
    static let domain = "domicile/erasure-completion/v1"

    public static func canonicalEncoding(request: SignedErasureRequest, completedAt: Timestamp, acks: [ErasureAck]) -> [UInt8] {
        var writer = BinaryWriter(capacity: 96 + 32 * acks.count)
        writer.write32(string: domain)
        writer.write32(string: request.erasureID)
        writer.write(raw: request.hash)
        writer.write(completedAt.milliseconds)
        let hashes = acks.map(\.hash).sorted { $0.lexicographicallyPrecedes($1) }
        writer.write(UInt32(clamping: hashes.count))
        for hash in hashes { writer.write(raw: hash) }
        return writer.bytes
    }

    public static func signature(request: SignedErasureRequest, completedAt: Timestamp, acks: [ErasureAck],
                                 key: Ed25519PrivateKey) -> [UInt8] {
        key.signature(for: canonicalEncoding(request: request, completedAt: completedAt, acks: acks))
    }
}

/// The proof that an erasure request completed: the signed request, one
/// signed ack per expected node, and the signed completion. Anyone with the
/// regions' public signing keys can check it, completeness included.
public struct ErasureCertificate: Sendable, Equatable {
    public let request: SignedErasureRequest
    public let completedAt: Timestamp
    public let completionSignature: [UInt8]
    public let acks: [ErasureAck]

    public var erasureID: String { request.erasureID }

    public init(request: SignedErasureRequest, completedAt: Timestamp, completionSignature: [UInt8], acks: [ErasureAck]) {
        self.request = request
        self.completedAt = completedAt
        self.completionSignature = completionSignature
        self.acks = acks.sorted { ($0.region, $0.node) < ($1.region, $1.node) }
    }

    public enum Problem: Equatable, Sendable, CustomStringConvertible {
        case badRequestSignature
        case untrustedRequestKey(region: RegionID)
        case noExpectedRegions
        case regionWithoutNodes(RegionID)
        case badCompletionSignature
        case completedBeforeRequested
        case badSignature(region: RegionID, node: String)
        case untrustedKey(region: RegionID, node: String)
        case otherRequest(region: RegionID, node: String)
        case otherSubject(region: RegionID, node: String)
        case erasedOutsideRequest(region: RegionID, node: String)
        case unexpectedRegion(RegionID)
        case unexpectedNode(region: RegionID, node: String)
        case duplicateAck(region: RegionID, node: String)
        case missingAck(region: RegionID, node: String)

        public var description: String {
            switch self {
            case .badRequestSignature: return "the signature does not match the request"
            case .untrustedRequestKey(let region): return "the request's key is not among region \(region)'s trusted keys"
            case .noExpectedRegions: return "the request expects no region"
            case .regionWithoutNodes(let region): return "the request expects region \(region) but none of its nodes"
            case .badCompletionSignature: return "the completion signature does not match the request, completed_at and acks"
            case .completedBeforeRequested: return "completed_at is before requested_at"
            case .badSignature(let region, let node): return "region \(region) node \(node): the signature does not match the ack"
            case .untrustedKey(let region, let node): return "region \(region): node \(node)'s key is not among the trusted keys"
            case .otherRequest(let region, let node): return "region \(region) node \(node): the ack answers another request"
            case .otherSubject(let region, let node): return "region \(region) node \(node): the ack's link hash is not the request's"
            case .erasedOutsideRequest(let region, let node):
                return "region \(region) node \(node): erased_at is not between requested_at and completed_at"
            case .unexpectedRegion(let region): return "region \(region) acks but the request does not expect it"
            case .unexpectedNode(let region, let node): return "region \(region): node \(node) acks but the request does not expect it"
            case .duplicateAck(let region, let node): return "region \(region): node \(node) acks twice"
            case .missingAck(let region, let node): return "region \(region): no ack from expected node \(node)"
            }
        }
    }

    /// Every problem found; empty means valid. With `trustedKeys` (public
    /// keys per region, e.g. from `domicile keys export-public`), the
    /// request's key must be one of its origin region's and each ack's one of
    /// its region's; without, only the signatures and completeness are checked.
    public func problems(trustedKeys: [RegionID: Set<Ed25519PublicKey>]? = nil) -> [Problem] {
        var problems: [Problem] = []
        if !request.isValid { problems.append(.badRequestSignature) }
        if let trustedKeys, !(trustedKeys[request.originRegion]?.contains(request.publicKey) ?? false) {
            problems.append(.untrustedRequestKey(region: request.originRegion))
        }
        if request.expectedNodes.isEmpty { problems.append(.noExpectedRegions) }
        for region in request.expectedRegions where request.expectedNodes[region]!.isEmpty {
            problems.append(.regionWithoutNodes(region))
        }
        let completion = ErasureCompletion.canonicalEncoding(request: request, completedAt: completedAt, acks: acks)
        if !request.publicKey.isValidSignature(completionSignature, for: completion) { problems.append(.badCompletionSignature) }
        if completedAt < request.requestedAt { problems.append(.completedBeforeRequested) }

        let requestHash = request.hash
        var acked: Set<[String]> = []
        for ack in acks {
            let (region, node) = (ack.region, ack.node)
            if !ack.isValid { problems.append(.badSignature(region: region, node: node)) }
            if let trustedKeys, !(trustedKeys[region]?.contains(ack.publicKey) ?? false) {
                problems.append(.untrustedKey(region: region, node: node))
            }
            if ack.erasureID != request.erasureID || ack.requestHash != requestHash {
                problems.append(.otherRequest(region: region, node: node))
            }
            if ack.linkHash != request.linkHash { problems.append(.otherSubject(region: region, node: node)) }
            if ack.erasedAt < request.requestedAt || completedAt < ack.erasedAt {
                problems.append(.erasedOutsideRequest(region: region, node: node))
            }
            guard let expected = request.expectedNodes[region] else {
                problems.append(.unexpectedRegion(region))
                continue
            }
            if !expected.contains(node) { problems.append(.unexpectedNode(region: region, node: node)) }
            if !acked.insert([region.rawValue, node]).inserted { problems.append(.duplicateAck(region: region, node: node)) }
        }
        for region in request.expectedRegions {
            for node in request.expectedNodes[region]! where !acked.contains([region.rawValue, node]) {
                problems.append(.missingAck(region: region, node: node))
            }
        }
        return problems
    }
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
