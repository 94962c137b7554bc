import DomicileCrypto
import DomicileModel

/// The keys a node uses, taken once from its unsealed keyring.
public struct RegionKeys: Sendable {
    public let pseudonymizers: PseudonymizerSet
    public let links: [LinkKey]
    /// The region data key(s): wrap subject keys, encrypt region-level values.
    public let data: KeySet
    public let signing: Ed25519PrivateKey
    /// Keys of the region's gossip pool and of the federation's.
    public let regionGossip: KeySet
    public let federationGossip: KeySet

    public init(keyring: Keyring) throws {
        pseudonymizers = try keyring.pseudonymizers()
        links = try keyring.linkKeys()
        data = try keyring.keySet(.data)
        signing = try keyring.signingKey()
        regionGossip = try keyring.keySet(.regionGossip)
        federationGossip = try keyring.keySet(.federationGossip)
    }

    /// A fresh per-subject key and its wrapped form (sealed under the region
    /// data key, bound to the pid).
    func newSubjectKey(for pid: PID) -> (key: AESGCMKey, wrapped: [UInt8]) {
        let secret = SecretBytes(randomCount: AESGCM.keyByteCount)
        let key = try! AESGCMKey(version: 1, secret: secret)
        return (key, data.seal(secret, associatedData: Self.wrapAssociatedData(pid)))
    }

    /// Unwraps a subject key; fails if the wrapped key was moved to another
    /// subject or the data key is missing.
    func subjectKey(wrapped: [UInt8], for pid: PID) throws -> AESGCMKey {
        var raw = try data.open(wrapped, associatedData: Self.wrapAssociatedData(pid))
        defer { for index in raw.indices { raw[index] = 0 } }
        return try AESGCMKey(version: 1, secret: SecretBytes(raw))
    }

    static func wrapAssociatedData(_ pid: PID) -> [UInt8] { Array("subject-key/\(pid.rawValue)".utf8) }
}
