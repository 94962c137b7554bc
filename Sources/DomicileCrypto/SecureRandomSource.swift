import DomicileModel

/// Production draws: the CSPRNG, buffered (a release takes dozens of draws).
public struct SecureRandomSource: RandomSource {
    public init() {}

    public func generator() -> any RandomNumberGenerator { BufferedSecureRandom() }
}
