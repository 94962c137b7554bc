import DomicileModel

/// One version of one kind of key.
public struct KeyEntry: Sendable {
    public let kind: KeyKind
    public let version: UInt32
    /// Unix seconds.
    public let createdAt: Int64
    public let material: SecretBytes

    public init(kind: KeyKind, version: UInt32, createdAt: Int64, material: SecretBytes) {
        self.kind = kind
        self.version = version
        self.createdAt = createdAt
        self.material = material
    }
}

public enum KeyringError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongMasterKey
    case notAKeyring
    case unsupportedFormat(UInt8)
    case corrupt(reason: String)
    case invalidMasterKey(reason: String)
    case missingKey(KeyKind)

    public var description: String {
        switch self {
        case .wrongMasterKey:
            return "the master key does not open this keyring (wrong key, or the file was changed)"
        case .notAKeyring:
            return "not a Domicile keyring file"
        case .unsupportedFormat(let format):
            return "keyring format \(format) is not supported by this version"
        case .corrupt(let reason):
            return "keyring is corrupt: \(reason)"
        case .invalidMasterKey(let reason):
            return "invalid master key: \(reason)"
        case .missingKey(let kind):
            return "the keyring holds no \(kind) key"
        }
    }
}

/// A node's versioned keys. The newest version of each kind is primary (it
/// encrypts, signs, pseudonymizes); older versions stay installed so that
/// what they protected remains readable until it has been re-keyed.
public struct Keyring: Sendable {
    public let region: RegionID
    public let node: NodeName
    public private(set) var entries: [KeyEntry]
    /// The key-encryption keys of subject keys (region scope: inherited with the region keys).
    public var buckets: SubjectKeyBuckets

    public init(region: RegionID, node: NodeName, entries: [KeyEntry], buckets: SubjectKeyBuckets = .none) {
        self.region = region
        self.node = node
        self.entries = entries.sorted { ($0.kind.rawValue, $0.version) < ($1.kind.rawValue, $1.version) }
        self.buckets = buckets
    }

    /// A new keyring with version 1 of every kind. Keys are taken from
    /// `source` where the two nodes must share them: federation keys always,
    /// region keys and bucket keys when `source` belongs to the same region.
    /// The node's signing key is always new.
    public static func generate(region: RegionID, node: NodeName, createdAt: Int64,
                                inheriting source: Keyring? = nil) -> Keyring {
        var entries: [KeyEntry] = []
        for kind in KeyKind.allCases {
            let inherited = source.map { source in
                source.entries.filter { entry in
                    switch kind.scope {
                    case .federation: return entry.kind == kind
                    case .region: return entry.kind == kind && source.region == region
                    case .node: return false
                    }
                }
            } ?? []
            if inherited.isEmpty {
                entries.append(KeyEntry(kind: kind, version: 1, createdAt: createdAt,
                                        material: SecretBytes(randomCount: kind.byteCount)))
            } else {
                entries.append(contentsOf: inherited)
            }
        }
        let buckets = source.flatMap { $0.region == region && $0.buckets.count > 0 ? $0.buckets : nil } ?? .generate(createdAt: createdAt)
        return Keyring(region: region, node: node, entries: entries, buckets: buckets)
    }

    public func versions(of kind: KeyKind) -> [KeyEntry] {
        entries.filter { $0.kind == kind }.sorted { $0.version > $1.version }
    }

    public func primary(_ kind: KeyKind) throws(KeyringError) -> KeyEntry {
        guard let newest = versions(of: kind).first else { throw .missingKey(kind) }
        return newest
    }

    public func entry(_ kind: KeyKind, version: UInt32) -> KeyEntry? {
        entries.first { $0.kind == kind && $0.version == version }
    }

    /// Adds the next version of `kind` and makes it primary.
    @discardableResult
    public mutating func rotate(_ kind: KeyKind, createdAt: Int64) -> KeyEntry {
        let next = (versions(of: kind).first?.version ?? 0) + 1
        let entry = KeyEntry(kind: kind, version: next, createdAt: createdAt,
                             material: SecretBytes(randomCount: kind.byteCount))
        entries.append(entry)
        entries.sort { ($0.kind.rawValue, $0.version) < ($1.kind.rawValue, $1.version) }
        return entry
    }
}

// Typed views of the key material, as the rest of Domicile uses it.
extension Keyring {
    public func pseudonymizers() throws -> PseudonymizerSet {
        let all = try versions(of: .pseudonym).map { entry in
            Pseudonymizer(region: region, keyVersion: entry.version, key: try HMACKey(key: entry.material))
        }
        guard !all.isEmpty else { throw KeyringError.missingKey(.pseudonym) }
        return PseudonymizerSet(all)
    }

    public func linkKeys() throws -> [LinkKey] {
        let all = try versions(of: .federationLink).map { entry in
            LinkKey(version: entry.version, key: try HMACKey(key: entry.material))
        }
        guard !all.isEmpty else { throw KeyringError.missingKey(.federationLink) }
        return all
    }

    /// The AES-GCM keys of `kind` (data, region gossip, federation gossip).
    public func keySet(_ kind: KeyKind) throws -> KeySet {
        let all = try versions(of: kind).map { try AESGCMKey(version: $0.version, secret: $0.material) }
        guard !all.isEmpty else { throw KeyringError.missingKey(kind) }
        return KeySet(all)
    }

    public func signingKey() throws -> Ed25519PrivateKey {
        try Ed25519PrivateKey(seed: try primary(.nodeSigning).material)
    }
}
