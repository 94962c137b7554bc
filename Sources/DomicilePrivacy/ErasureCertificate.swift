import DomicileCrypto
import DomicileModel

// An erasure certificate is three kinds of signed statement (docs/FORMATS.md,
// "Erasure certificate"): the origin's signed REQUEST, signed ACKs (one per
// node that erased, or one per region whose nodes share a log), and the
// signed COMPLETION over the request and the acks, by a node of the origin
// region. Every field a reader relies on is inside one of the signatures.

/// A node of the origin region's signed statement that the request
/// completed, at `completedAt`, with exactly these acks.
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

/// The proof that an erasure request completed: the signed request, the
/// signed acks (one per expected node, or one per region whose nodes share a
/// log), and the signed completion. Anyone with the regions' public signing
/// keys can check it, completeness included.
public struct ErasureCertificate: Sendable, Equatable {
    public let request: SignedErasureRequest
    public let completedAt: Timestamp
    /// The node of the origin region that signed the completion: the origin,
    /// or in a region with a log whichever node recorded the last ack (the
    /// origin may have lost its leadership, or its life, meanwhile).
    public let completedBy: String
    public let completionPublicKey: Ed25519PublicKey
    public let completionSignature: [UInt8]
    public let acks: [ErasureAck]

    public var erasureID: String { request.erasureID }

    /// Without `completedBy`, the origin signed the completion.
    public init(request: SignedErasureRequest, completedAt: Timestamp, completedBy: String? = nil,
                completionPublicKey: Ed25519PublicKey? = nil, completionSignature: [UInt8], acks: [ErasureAck]) {
        self.request = request
        self.completedAt = completedAt
        self.completedBy = completedBy ?? request.originNode
        self.completionPublicKey = completionPublicKey ?? request.publicKey
        self.completionSignature = completionSignature
        self.acks = acks.sorted { ($0.region, $0.node) < ($1.region, $1.node) }
    }

    public enum Problem: Equatable, Sendable, CustomStringConvertible {
        case badRequestSignature
        case untrustedRequestKey(region: RegionID)
        case noExpectedRegions
        case regionWithoutNodes(RegionID)
        case badCompletionSignature
        case untrustedCompletionKey(region: RegionID, node: String)
        case completedBeforeRequested
        case badSignature(region: RegionID, node: String)
        case untrustedKey(region: RegionID, node: String)
        case otherRequest(region: RegionID, node: String)
        case otherSubject(region: RegionID, node: String)
        case erasedOutsideRequest(region: RegionID, node: String)
        case unexpectedRegion(RegionID)
        case unexpectedNode(region: RegionID, node: String)
        case duplicateAck(region: RegionID, node: String)
        case regionAckWithOthers(RegionID)
        case missingAck(region: RegionID, node: String)

        public var description: String {
            switch self {
            case .badRequestSignature: return "the signature does not match the request"
            case .untrustedRequestKey(let region): return "the request's key is not a trusted key of its origin node in region \(region)"
            case .noExpectedRegions: return "the request expects no region"
            case .regionWithoutNodes(let region): return "the request expects region \(region) but none of its nodes"
            case .badCompletionSignature: return "the completion signature does not match the request, completed_at and acks"
            case .untrustedCompletionKey(let region, let node):
                return "the completion's key is not a trusted key of node \(node) of the origin region \(region)"
            case .completedBeforeRequested: return "completed_at is before requested_at"
            case .badSignature(let region, let node): return "region \(region) node \(node): the signature does not match the ack"
            case .untrustedKey(let region, let node): return "region \(region): the ack's key is not a trusted key of node \(node)"
            case .otherRequest(let region, let node): return "region \(region) node \(node): the ack answers another request"
            case .otherSubject(let region, let node): return "region \(region) node \(node): the ack's link hash is not the request's"
            case .erasedOutsideRequest(let region, let node):
                return "region \(region) node \(node): erased_at is not between requested_at and completed_at"
            case .unexpectedRegion(let region): return "region \(region) acks but the request does not expect it"
            case .unexpectedNode(let region, let node): return "region \(region): node \(node) acks but the request does not expect it"
            case .duplicateAck(let region, let node): return "region \(region): node \(node) acks twice"
            case .regionAckWithOthers(let region): return "region \(region) acks for the whole region and also otherwise"
            case .missingAck(let region, let node): return "region \(region): no ack from expected node \(node)"
            }
        }
    }

    /// Every problem found; empty means valid. With `trusted` (each node's
    /// public keys, e.g. from `domicile keys export-public`), the request
    /// must be signed by a key of its origin node, the completion by a key of
    /// the node of the origin region it names, and each ack by a key of the
    /// node it names: a node cannot sign for another, even of its own
    /// region. Without, only the signatures and completeness are checked.
    ///
    /// A region is complete with one ack of each of its expected nodes, or
    /// with one `region` ack alone (from any node of it: one added after the
    /// request may sign for the region it joined).
    public func problems(trusted: ErasureTrust? = nil) -> [Problem] {
        var problems: [Problem] = []
        if !request.isValid { problems.append(.badRequestSignature) }
        if let trusted, !trusted.trusts(request.publicKey, region: request.originRegion, node: request.originNode) {
            problems.append(.untrustedRequestKey(region: request.originRegion))
        }
        if request.expectedNodes.isEmpty { problems.append(.noExpectedRegions) }
        let regionWide = Set(acks.filter { $0.scope == .region }.map(\.region))
        // A region named without nodes can only be acked for as a whole (a region whose nodes the origin did not know).
        for region in request.expectedRegions where request.expectedNodes[region]!.isEmpty && !regionWide.contains(region) {
            problems.append(.regionWithoutNodes(region))
        }
        let completion = ErasureCompletion.canonicalEncoding(request: request, completedAt: completedAt, acks: acks)
        if !completionPublicKey.isValidSignature(completionSignature, for: completion) { problems.append(.badCompletionSignature) }
        if let trusted, !trusted.trusts(completionPublicKey, region: request.originRegion, node: completedBy) {
            problems.append(.untrustedCompletionKey(region: request.originRegion, node: completedBy))
        }
        if completedAt < request.requestedAt { problems.append(.completedBeforeRequested) }

        let requestHash = request.hash
        var acked: Set<[String]> = []
        for ack in acks {
            let (region, node) = (ack.region, ack.node)
            if !ack.isValid { problems.append(.badSignature(region: region, node: node)) }
            if let trusted, !trusted.trusts(ack.publicKey, region: region, node: node) {
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
            if ack.scope == .node, !expected.contains(node) { problems.append(.unexpectedNode(region: region, node: node)) }
            if !acked.insert([region.rawValue, node]).inserted { problems.append(.duplicateAck(region: region, node: node)) }
        }
        for region in regionWide.sorted() where acks.count(where: { $0.region == region }) > 1 {
            problems.append(.regionAckWithOthers(region))
        }
        for region in request.expectedRegions where !regionWide.contains(region) {
            for node in request.expectedNodes[region]! where !acked.contains([region.rawValue, node]) {
                problems.append(.missingAck(region: region, node: node))
            }
        }
        return problems
    }
}

/// The public signing keys a reader trusts, per node: what `domicile keys
/// export-public` prints for each node.
public struct ErasureTrust: Sendable {
    private var keys: [RegionID: [String: Set<Ed25519PublicKey>]] = [:]

    public init() {}

    public mutating func trust(_ key: Ed25519PublicKey, region: RegionID, node: String) {
        keys[region, default: [:]][node, default: []].insert(key)
    }

    public func trusts(_ key: Ed25519PublicKey, region: RegionID, node: String) -> Bool {
        keys[region]?[node]?.contains(key) ?? false
    }
}
