import DomicileModel
import DomicilePrivacy

/// An erasure request as it travels: the request its origin node signed
/// (id, times, jurisdiction, origin, policy version, the link's hash and the
/// expected regions with their nodes) and the pids it erases. Nothing in it
/// is an identifier: a subject is named by the link's hash and by pids, each
/// of which must parse as a pid.
public struct ErasureIntent: Sendable, Equatable {
    public static let pidsMax = 10_000

    public let request: SignedErasureRequest
    /// Sorted, distinct.
    public let erasedPids: [PID]

    public init(request: SignedErasureRequest, erasedPids: [PID]) throws(FederationError) {
        guard erasedPids.count <= Self.pidsMax else { throw .invalidRecord("erased pids") }
        try ErasureFields.validate(request)
        self.request = request
        self.erasedPids = Array(Set(erasedPids)).sorted()
    }

    public var erasureID: String { request.erasureID }
    public var linkHash: [UInt8] { request.linkHash }
    public var originRegion: RegionID { request.originRegion }
    public var expectedRegions: [RegionID] { request.expectedRegions }
}

/// Checks shared by intents and acks: ids are minted erasure ids, names are
/// names, hashes are SHA-256 sized, keys and signatures Ed25519 sized.
enum ErasureFields {
    static let hashByteCount = 32
    static let expectedRegionsMax = 256
    static let nodesPerRegionMax = 64
    static let countsMax = 64

    static func validate(_ request: SignedErasureRequest) throws(FederationError) {
        guard MintedID.isValid(request.erasureID, kind: .erasure) else { throw .invalidRecord("erasure id") }
        guard Name.isValid(request.jurisdiction) else { throw .invalidRecord("jurisdiction") }
        guard isNodeName(request.originNode) else { throw .invalidRecord("origin node") }
        guard request.linkHash.count == hashByteCount else { throw .invalidRecord("link hash") }
        guard request.signature.count == signatureByteCount else { throw .invalidRecord("signature") }
        guard (1...expectedRegionsMax).contains(request.expectedNodes.count) else { throw .invalidRecord("expected regions") }
        for nodes in request.expectedNodes.values {
            guard nodes.count <= nodesPerRegionMax, Set(nodes).count == nodes.count, nodes.allSatisfy(isNodeName) else {
                throw .invalidRecord("expected nodes")
            }
        }
    }

    static func validate(_ ack: ErasureAck) throws(FederationError) {
        guard MintedID.isValid(ack.erasureID, kind: .erasure) else { throw .invalidRecord("erasure id") }
        guard ack.requestHash.count == hashByteCount, ack.linkHash.count == hashByteCount else { throw .invalidRecord("ack hashes") }
        guard isNodeName(ack.node) else { throw .invalidRecord("ack node") }
        guard Name.isValid(ack.scope.rawValue) else { throw .invalidRecord("ack scope") }
        guard ack.counts.count <= countsMax, ack.counts.keys.allSatisfy(Name.isValid) else { throw .invalidRecord("ack counts") }
        guard ack.signature.count == signatureByteCount else { throw .invalidRecord("signature") }
    }

    static let signatureByteCount = 64

    static func isNodeName(_ text: String) -> Bool { (try? NodeName(text)) != nil }
}
