import DomicileCrypto
import DomicileModel

// MARK: JSON (API.md, "Erasure"; docs/FORMATS.md, "Erasure certificate")
//
// Times are RFC 3339 (milliseconds when not zero, so they convert back
// exactly), hashes lowercase hex, signatures and keys standard base64.

extension ErasureCertificate: Codable {
    enum CodingKeys: String, CodingKey {
        case erasureID = "erasure_id", requestedAt = "requested_at", dueAt = "due_at", jurisdiction
        case originRegion = "origin_region", originNode = "origin_node", policyVersion = "policy_version", linkHash = "link_hash"
        case expectedRegions = "expected_regions", expectedNodes = "expected_nodes"
        case requestSignature = "request_signature", publicKey = "public_key"
        case completedAt = "completed_at", completionSignature = "completion_signature", acks
    }

    struct AckDocument: Codable {
        let region: String
        let node: String
        let scope: String
        let requestHash: String
        let erasedAt: String
        let counts: [String: Int64]
        let linkHash: String
        let walTruncated: Bool
        let policyVersion: Int64
        let signature: String
        let publicKey: String

        enum CodingKeys: String, CodingKey {
            case region, node, scope, requestHash = "request_hash", erasedAt = "erased_at", counts, linkHash = "link_hash"
            case walTruncated = "wal_truncated", policyVersion = "policy_version", signature, publicKey = "public_key"
        }

        init(_ ack: ErasureAck) {
            region = ack.region.rawValue
            node = ack.node
            scope = ack.scope.rawValue
            requestHash = Hex.encode(ack.requestHash)
            erasedAt = ack.erasedAt.rfc3339
            counts = ack.counts
            linkHash = Hex.encode(ack.linkHash)
            walTruncated = ack.walTruncated
            policyVersion = ack.policyVersion
            signature = Base64.encode(ack.signature)
            publicKey = Base64.encode(ack.publicKey.rawRepresentation)
        }

        func ack(erasureID: String, index: Int) throws -> ErasureAck {
            func malformed(_ field: String) -> Malformed { Malformed(description: "acks[\(index)].\(field) is malformed") }
            guard let region = try? RegionID(region) else { throw malformed("region") }
            guard let scope = ErasureScope(rawValue: scope) else { throw malformed("scope") }
            guard let requestHash = Hex.decode(requestHash) else { throw malformed("request_hash") }
            guard let erasedAt = try? Timestamp(rfc3339: erasedAt) else { throw malformed("erased_at") }
            guard let linkHash = Hex.decode(linkHash) else { throw malformed("link_hash") }
            guard let signature = Base64.decode(signature) else { throw malformed("signature") }
            guard let key = ErasureCertificate.publicKey(publicKey) else { throw malformed("public_key") }
            return ErasureAck(erasureID: erasureID, requestHash: requestHash, region: region, node: node, scope: scope,
                              erasedAt: erasedAt, counts: counts, linkHash: linkHash, walTruncated: walTruncated,
                              policyVersion: policyVersion, signature: signature, publicKey: key)
        }
    }

    public struct Malformed: Error, CustomStringConvertible {
        public let description: String
    }

    static func publicKey(_ text: String) -> Ed25519PublicKey? {
        Base64.decode(text).flatMap { try? Ed25519PublicKey(rawRepresentation: $0) }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String { try container.decode(String.self, forKey: key) }
        func malformed(_ key: CodingKeys) -> Malformed { Malformed(description: "\(key.rawValue) is malformed") }
        func timestamp(_ key: CodingKeys) throws -> Timestamp {
            guard let value = try? Timestamp(rfc3339: try text(key)) else {
                throw Malformed(description: "\(key.rawValue) is not an RFC 3339 timestamp")
            }
            return value
        }
        func bytes(_ key: CodingKeys, _ decode: (String) -> [UInt8]?) throws -> [UInt8] {
            guard let value = decode(try text(key)) else { throw malformed(key) }
            return value
        }

        let erasureID = try text(.erasureID)
        guard let originRegion = try? RegionID(try text(.originRegion)) else { throw malformed(.originRegion) }
        var expectedNodes: [RegionID: [String]] = [:]
        for (name, nodes) in try container.decode([String: [String]].self, forKey: .expectedNodes) {
            guard let region = try? RegionID(name) else { throw malformed(.expectedNodes) }
            expectedNodes[region] = nodes
        }
        // The list API.md shows, and the signed map's keys: they must agree.
        let expectedRegions = try container.decode([String].self, forKey: .expectedRegions)
        guard expectedRegions.sorted() == expectedNodes.keys.map(\.rawValue).sorted() else {
            throw Malformed(description: "expected_regions and expected_nodes name different regions")
        }
        guard let publicKey = Self.publicKey(try text(.publicKey)) else { throw malformed(.publicKey) }
        let request = SignedErasureRequest(
            erasureID: erasureID, requestedAt: try timestamp(.requestedAt), dueAt: try timestamp(.dueAt),
            jurisdiction: try text(.jurisdiction), originRegion: originRegion, originNode: try text(.originNode),
            policyVersion: try container.decode(Int64.self, forKey: .policyVersion), linkHash: try bytes(.linkHash, Hex.decode),
            expectedNodes: expectedNodes, signature: try bytes(.requestSignature, Base64.decode), publicKey: publicKey)
        let acks = try container.decode([AckDocument].self, forKey: .acks).enumerated().map { index, document in
            try document.ack(erasureID: erasureID, index: index)
        }
        self.init(request: request, completedAt: try timestamp(.completedAt),
                  completionSignature: try bytes(.completionSignature, Base64.decode), acks: acks)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(request.erasureID, forKey: .erasureID)
        try container.encode(request.requestedAt.rfc3339, forKey: .requestedAt)
        try container.encode(request.dueAt.rfc3339, forKey: .dueAt)
        try container.encode(request.jurisdiction, forKey: .jurisdiction)
        try container.encode(request.originRegion.rawValue, forKey: .originRegion)
        try container.encode(request.originNode, forKey: .originNode)
        try container.encode(request.policyVersion, forKey: .policyVersion)
        try container.encode(Hex.encode(request.linkHash), forKey: .linkHash)
        try container.encode(request.expectedRegions.map(\.rawValue), forKey: .expectedRegions)
        try container.encode(Dictionary(uniqueKeysWithValues: request.expectedNodes.map { ($0.key.rawValue, $0.value) }),
                             forKey: .expectedNodes)
        try container.encode(Base64.encode(request.signature), forKey: .requestSignature)
        try container.encode(Base64.encode(request.publicKey.rawRepresentation), forKey: .publicKey)
        try container.encode(completedAt.rfc3339, forKey: .completedAt)
        try container.encode(Base64.encode(completionSignature), forKey: .completionSignature)
        try container.encode(acks.map(AckDocument.init), forKey: .acks)
    }
}
