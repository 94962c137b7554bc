import DomicileCrypto
import DomicileModel

// MARK: JSON (API.md, "Erasure"; docs/FORMATS.md, "Erasure certificate")
//
// Times are RFC 3339 (milliseconds when not zero, so they convert back
// exactly), hashes lowercase hex, signatures and keys standard base64.

/// The signed request's members, as the certificate shows them and as a
/// node sends the request to the other nodes of its region.
extension SignedErasureRequest: Codable {
    enum CodingKeys: String, CodingKey {
        case erasureID = "erasure_id", requestedAt = "requested_at", dueAt = "due_at", jurisdiction
        case originRegion = "origin_region", originNode = "origin_node", policyVersion = "policy_version", linkHash = "link_hash"
        case expectedRegions = "expected_regions", expectedNodes = "expected_nodes"
        case requestSignature = "request_signature", publicKey = "public_key"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String { try container.decode(String.self, forKey: key) }
        func malformed(_ key: CodingKeys) -> ErasureCertificate.Malformed {
            ErasureCertificate.Malformed(description: "\(key.rawValue) is malformed")
        }
        func timestamp(_ key: CodingKeys) throws -> Timestamp {
            guard let value = try? Timestamp(rfc3339: try text(key)) else {
                throw ErasureCertificate.Malformed(description: "\(key.rawValue) is not an RFC 3339 timestamp")
            }
            return value
        }
        func bytes(_ key: CodingKeys, _ decode: (String) -> [UInt8]?) throws -> [UInt8] {
            guard let value = decode(try text(key)) else { throw malformed(key) }
            return value
        }

        guard let originRegion = try? RegionID(try text(.originRegion)) else { throw malformed(.originRegion) }
        var expectedNodes: [RegionID: [String]] = [:]
        for (name, nodes) in try container.decode([String: [String]].self, forKey: .expectedNodes) {
            guard let region = try? RegionID(name) else { throw malformed(.expectedNodes) }
            expectedNodes[region] = nodes
        }
        // The list API.md shows, and the signed map's keys: they must agree.
        let expectedRegions = try container.decode([String].self, forKey: .expectedRegions)
        guard expectedRegions.sorted() == expectedNodes.keys.map(\.rawValue).sorted() else {
            throw ErasureCertificate.Malformed(description: "expected_regions and expected_nodes name different regions")
        }
        guard let publicKey = ErasureCertificate.publicKey(try text(.publicKey)) else { throw malformed(.publicKey) }
        self.init(erasureID: try text(.erasureID), requestedAt: try timestamp(.requestedAt), dueAt: try timestamp(.dueAt),
                  jurisdiction: try text(.jurisdiction), originRegion: originRegion, originNode: try text(.originNode),
                  policyVersion: try container.decode(Int64.self, forKey: .policyVersion), linkHash: try bytes(.linkHash, Hex.decode),
                  expectedNodes: expectedNodes, signature: try bytes(.requestSignature, Base64.decode), publicKey: publicKey)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(erasureID, forKey: .erasureID)
        try container.encode(requestedAt.rfc3339, forKey: .requestedAt)
        try container.encode(dueAt.rfc3339, forKey: .dueAt)
        try container.encode(jurisdiction, forKey: .jurisdiction)
        try container.encode(originRegion.rawValue, forKey: .originRegion)
        try container.encode(originNode, forKey: .originNode)
        try container.encode(policyVersion, forKey: .policyVersion)
        try container.encode(Hex.encode(linkHash), forKey: .linkHash)
        try container.encode(expectedRegions.map(\.rawValue), forKey: .expectedRegions)
        try container.encode(Dictionary(uniqueKeysWithValues: expectedNodes.map { ($0.key.rawValue, $0.value) }), forKey: .expectedNodes)
        try container.encode(Base64.encode(signature), forKey: .requestSignature)
        try container.encode(Base64.encode(publicKey.rawRepresentation), forKey: .publicKey)
    }
}

/// The certificate: the signed request's members, then the completion and the acks.
extension ErasureCertificate: Codable {
    enum CodingKeys: String, CodingKey {
        case completedAt = "completed_at", completedBy = "completed_by", completionPublicKey = "completion_public_key"
        case completionSignature = "completion_signature", acks
    }

    /// One ack as the certificate lists it (its erasure id is the request's).
    public struct AckDocument: Codable, Sendable {
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

        public init(_ ack: ErasureAck) {
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

        public func ack(erasureID: String, index: Int) throws -> ErasureAck {
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
        let request = try SignedErasureRequest(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let completedAt = try? Timestamp(rfc3339: try container.decode(String.self, forKey: .completedAt)) else {
            throw Malformed(description: "completed_at is not an RFC 3339 timestamp")
        }
        guard let completionSignature = Base64.decode(try container.decode(String.self, forKey: .completionSignature)) else {
            throw Malformed(description: "completion_signature is malformed")
        }
        let acks = try container.decode([AckDocument].self, forKey: .acks).enumerated().map { index, document in
            try document.ack(erasureID: request.erasureID, index: index)
        }
        // Certificates from before completions could be signed by another node than the origin have neither member.
        let completedBy = try container.decodeIfPresent(String.self, forKey: .completedBy)
        var completionPublicKey: Ed25519PublicKey?
        if let text = try container.decodeIfPresent(String.self, forKey: .completionPublicKey) {
            guard let key = Self.publicKey(text) else { throw Malformed(description: "completion_public_key is malformed") }
            completionPublicKey = key
        }
        guard (completedBy == nil) == (completionPublicKey == nil) else {
            throw Malformed(description: "completed_by and completion_public_key go together")
        }
        self.init(request: request, completedAt: completedAt, completedBy: completedBy, completionPublicKey: completionPublicKey,
                  completionSignature: completionSignature, acks: acks)
    }

    public func encode(to encoder: any Encoder) throws {
        try request.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(completedAt.rfc3339, forKey: .completedAt)
        try container.encode(completedBy, forKey: .completedBy)
        try container.encode(Base64.encode(completionPublicKey.rawRepresentation), forKey: .completionPublicKey)
        try container.encode(Base64.encode(completionSignature), forKey: .completionSignature)
        try container.encode(acks.map(AckDocument.init), forKey: .acks)
    }
}
