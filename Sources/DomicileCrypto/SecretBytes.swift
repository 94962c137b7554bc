import COpenSSL

/// Key material in memory that is wiped when released.
///
/// Immutable after creation, so it may be shared between threads. Its
/// `description` never prints the bytes.
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible {
    private let storage: UnsafeMutableRawBufferPointer

    public init<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        storage = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        storage.copyBytes(from: bytes)
        count = bytes.count
    }

    /// Fresh random bytes from the CSPRNG.
    public init(randomCount: Int) {
        storage = .allocate(byteCount: max(randomCount, 1), alignment: 16)
        count = randomCount
        SecureRandom.fill(UnsafeMutableRawBufferPointer(rebasing: storage[0..<randomCount]))
    }

    /// Fresh bytes drawn from `random` (an injected source: the CSPRNG in production).
    public init(randomCount: Int, using random: inout some RandomNumberGenerator) {
        storage = .allocate(byteCount: max(randomCount, 1), alignment: 16)
        count = randomCount
        random.fill(UnsafeMutableRawBufferPointer(rebasing: storage[0..<randomCount]))
    }

    public let count: Int

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy as an array, for serialization into a sealed container only.
    public var bytesForSealing: [UInt8] { withUnsafeBytes { Array($0) } }

    public var description: String { "SecretBytes(\(count) bytes, redacted)" }

    deinit {
        // OPENSSL_cleanse is not optimized away, unlike a plain memset.
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }
}
