/// What a minted id names. The raw value is the id's prefix, which clients
/// and stored rows see (`rc_…`): append-only, never renamed.
public enum IDKind: String, Sendable, CaseIterable {
    case consentReceipt = "rc"
    case privacyCharge = "ch"
    case release = "rl"
    case erasure = "er"
    case reidentification = "ri"

    /// Random bytes in an id: 96 bits, 24 lowercase hexadecimal digits.
    public static let randomByteCount = 12

    /// The id's text: the prefix, `_`, and `randomBytes` in hexadecimal.
    public func id(randomBytes: [UInt8]) -> String {
        precondition(randomBytes.count == Self.randomByteCount,
                     "an id takes \(Self.randomByteCount) random bytes, not \(randomBytes.count)")
        return rawValue + "_" + Hex.encode(randomBytes)
    }
}

/// Where new ids come from. A node mints every id through the one it was
/// started with (the CSPRNG in production, `SeededIDGenerator` in tests and
/// the simulator), so a run of domain operations replays from a seed.
public protocol IDGenerator: Sendable {
    /// A fresh id of `kind`: its prefix, `_`, and 24 lowercase hexadecimal digits.
    func next(_ kind: IDKind) -> String
}
