import COpenSSL

/// The CSPRNG: OpenSSL's `RAND_bytes` (a DRBG seeded from the OS).
///
/// Usable as a `RandomNumberGenerator`. Pure modules never create one: they
/// take a generator as a parameter so tests can pass a seeded one.
public struct SecureRandom: RandomNumberGenerator, Sendable {
    public init() {}

    public mutating func next() -> UInt64 {
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { Self.fill($0) }
        return value
    }

    /// Fills `buffer` or stops the process: without randomness nothing
    /// (nonces, keys, noise) can be produced safely, so fail closed.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        precondition(RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1,
                     "RAND_bytes failed: \(OpenSSL.lastError())")
    }

    public static func bytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { fill($0) }
        return bytes
    }
}

/// The same CSPRNG, drawn 4 KiB at a time: for noise sampling, which takes
/// dozens of 64-bit draws per sample and would otherwise pay a `RAND_bytes`
/// call for each. Not `Sendable`: one per release, used and dropped; the
/// unread part of the buffer is zeroed when it goes.
public final class BufferedSecureRandom: RandomNumberGenerator {
    private static let wordCount = 512
    private let words = UnsafeMutablePointer<UInt64>.allocate(capacity: BufferedSecureRandom.wordCount)
    private var position = BufferedSecureRandom.wordCount

    public init() {}

    deinit {
        words.update(repeating: 0, count: Self.wordCount)
        words.deallocate()
    }

    public func next() -> UInt64 {
        if position == Self.wordCount {
            SecureRandom.fill(UnsafeMutableRawBufferPointer(start: words, count: Self.wordCount * 8))
            position = 0
        }
        defer { position += 1 }
        return words[position]
    }
}
