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

    /// Subject keys and the bucket keys that wrap them (the only keys the
    /// node changes while it runs).
    let subjects: SubjectKeyring

    /// `persist` writes a changed keyring durably (the node's sealed file);
    /// `clock` gives Unix seconds for new key versions; `random` their material.
    public init(keyring: Keyring, clock: @escaping @Sendable () -> Int64, random: any RandomSource,
                persist: @escaping @Sendable (Keyring) throws -> Void) throws {
        pseudonymizers = try keyring.pseudonymizers()
        links = try keyring.linkKeys()
        data = try keyring.keySet(.data)
        signing = try keyring.signingKey()
        regionGossip = try keyring.keySet(.regionGossip)
        federationGossip = try keyring.keySet(.federationGossip)
        subjects = SubjectKeyring(keyring: keyring, legacy: data, clock: clock, random: random, persist: persist)
    }

    /// A fresh per-subject key and its wrapped form (under the current key of
    /// the pid's bucket, bound to the pid).
    func newSubjectKey(for pid: PID) -> (key: AESGCMKey, wrapped: [UInt8], wrapping: SubjectKeyring.Wrapping) {
        subjects.newKey(for: pid)
    }

    /// Unwraps a subject key: nil when the key that wrapped it was destroyed
    /// (an erased subject); throws when it was moved to another subject or
    /// altered.
    func subjectKey(wrapped: [UInt8], for pid: PID) throws -> AESGCMKey? {
        try subjects.unwrap(wrapped, for: pid)
    }
}
