import DomicileModel

/// Production ids: 96 bits from the CSPRNG, so an id reveals nothing
/// (no order, no time, no node) and cannot be guessed.
public struct SecureIDGenerator: IDGenerator {
    public init() {}

    public func next(_ kind: IDKind) -> String {
        kind.id(randomBytes: SecureRandom.bytes(IDKind.randomByteCount))
    }
}
