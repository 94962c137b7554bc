import DomicileCrypto
import DomicileModel
import Foundation

/// What one region erased for an erasure request, signed by the node that
/// erased it (docs/FORMATS.md, "Erasure ack"). The signature covers the
/// request id, region, node, time and every count, so none can be changed.
public struct ErasureAck: Sendable, Equatable {
    public let erasureID: String
    public let region: RegionID
    public let node: String
    public let erasedAt: Timestamp
    /// Rows erased per table (`subjects`, `features`, …).
    public let counts: [String: Int64]
    public let signature: [UInt8]
    public let publicKey: Ed25519PublicKey

    static let domain = "domicile/erasure-ack/v1"

    public init(erasureID: String, region: RegionID, node: String, erasedAt: Timestamp, counts: [String: Int64],
                signature: [UInt8], publicKey: Ed25519PublicKey) {
        self.erasureID = erasureID
        self.region = region
        self.node = node
        self.erasedAt = erasedAt
        self.counts = counts
        self.signature = signature
        self.publicKey = publicKey
    }

    public static func signed(erasureID: String, region: RegionID, node: String, erasedAt: Timestamp, counts: [String: Int64],
                              key: Ed25519PrivateKey) -> ErasureAck {
        let message = canonicalEncoding(erasureID: erasureID, region: region, node: node, erasedAt: erasedAt, counts: counts)
        return ErasureAck(erasureID: erasureID, region: region, node: node, erasedAt: erasedAt, counts: counts,
                          signature: key.signature(for: message), publicKey: key.publicKey)
    }

    /// The signed bytes: the domain, then each field length-prefixed or
    /// fixed-width big-endian, counts sorted by table name.
    public static func canonicalEncoding(erasureID: String, region: RegionID, node: String, erasedAt: Timestamp,
                                         counts: [String: Int64]) -> [UInt8] {
        var writer = BinaryWriter(capacity: 128)
        writer.write8(string: domain)
        writer.write8(string: erasureID)
        writer.write8(string: region.rawValue)
        writer.write8(string: node)
        writer.write(erasedAt.milliseconds)
        writer.write(UInt16(counts.count))
        for (table, count) in counts.sorted(by: { $0.key < $1.key }) {
            writer.write8(string: table)
            writer.write(count)
        }
        return writer.bytes
    }

    public var isValid: Bool {
        let message = Self.canonicalEncoding(erasureID: erasureID, region: region, node: node, erasedAt: erasedAt, counts: counts)
        return publicKey.isValidSignature(signature, for: message)
    }
}

/// The proof that an erasure request completed: one signed ack per region
/// that took part. Anyone with the regions' public signing keys can check it.
public struct ErasureCertificate: Sendable, Equatable {
    public let erasureID: String
    public let requestedAt: Timestamp
    public let completedAt: Timestamp
    public let acks: [ErasureAck]

    public init(erasureID: String, requestedAt: Timestamp, completedAt: Timestamp, acks: [ErasureAck]) {
        self.erasureID = erasureID
        self.requestedAt = requestedAt
        self.completedAt = completedAt
        self.acks = acks.sorted { $0.region < $1.region }
    }

    public enum Problem: Equatable, Sendable, CustomStringConvertible {
        case noAcks
        case badSignature(region: RegionID)
        case untrustedKey(region: RegionID, node: String)
        case duplicateRegion(RegionID)

        public var description: String {
            switch self {
            case .noAcks: return "the certificate has no acks"
            case .badSignature(let region): return "region \(region): the signature does not match the ack"
            case .untrustedKey(let region, let node): return "region \(region): node \(node)'s key is not among the trusted keys"
            case .duplicateRegion(let region): return "region \(region) acks twice"
            }
        }
    }

    /// Every problem found; empty means valid. With `trustedKeys` (public
    /// keys per region, e.g. from `domicile keys export-public`), each ack's
    /// key must be one of its region's; without, only the signatures are checked.
    public func problems(trustedKeys: [RegionID: Set<Ed25519PublicKey>]? = nil) -> [Problem] {
        var problems: [Problem] = acks.isEmpty ? [.noAcks] : []
        var seen: Set<RegionID> = []
        for ack in acks {
            if !seen.insert(ack.region).inserted { problems.append(.duplicateRegion(ack.region)) }
            let bound = ErasureAck(erasureID: erasureID, region: ack.region, node: ack.node, erasedAt: ack.erasedAt, counts: ack.counts,
                                   signature: ack.signature, publicKey: ack.publicKey)
            if !bound.isValid { problems.append(.badSignature(region: ack.region)) }
            if let trustedKeys, !(trustedKeys[ack.region]?.contains(ack.publicKey) ?? false) {
                problems.append(.untrustedKey(region: ack.region, node: ack.node))
            }
        }
        return problems
    }
}

// MARK: JSON (API.md, "Erasure")

extension ErasureCertificate: Codable {
    enum CodingKeys: String, CodingKey {
        case erasureID = "erasure_id", requestedAt = "requested_at", completedAt = "completed_at", acks
    }

    struct AckDocument: Codable {
        let region: String
        let node: String
        let erasedAt: String
        let counts: [String: Int64]
        let signature: String
        let publicKey: String

        enum CodingKeys: String, CodingKey {
            case region, node, erasedAt = "erased_at", counts, signature, publicKey = "public_key"
        }
    }

    public struct Malformed: Error, CustomStringConvertible {
        public let description: String
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let erasureID = try container.decode(String.self, forKey: .erasureID)
        func timestamp(_ key: CodingKeys) throws -> Timestamp {
            guard let value = try? Timestamp(rfc3339: try container.decode(String.self, forKey: key)) else {
                throw Malformed(description: "\(key.rawValue) is not an RFC 3339 timestamp")
            }
            return value
        }
        let acks = try container.decode([AckDocument].self, forKey: .acks).enumerated().map { index, document in
            guard let region = try? RegionID(document.region), let erasedAt = try? Timestamp(rfc3339: document.erasedAt),
                  let signature = Base64.decode(document.signature), let keyBytes = Base64.decode(document.publicKey),
                  let publicKey = try? Ed25519PublicKey(rawRepresentation: keyBytes) else {
                throw Malformed(description: "acks[\(index)] is malformed")
            }
            return ErasureAck(erasureID: erasureID, region: region, node: document.node, erasedAt: erasedAt, counts: document.counts,
                              signature: signature, publicKey: publicKey)
        }
        self.init(erasureID: erasureID, requestedAt: try timestamp(.requestedAt), completedAt: try timestamp(.completedAt), acks: acks)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(erasureID, forKey: .erasureID)
        try container.encode(requestedAt.rfc3339, forKey: .requestedAt)
        try container.encode(completedAt.rfc3339, forKey: .completedAt)
        try container.encode(acks.map { ack in
            AckDocument(region: ack.region.rawValue, node: ack.node, erasedAt: ack.erasedAt.rfc3339, counts: ack.counts,
                        signature: Base64.encode(ack.signature), publicKey: Base64.encode(ack.publicKey.rawRepresentation))
        }, forKey: .acks)
    }
}
