/// Where an operation's random draws come from (the noise of a release or
/// an export). Each operation takes a generator of its own, draws, and
/// drops it, so no generator is shared between threads.
public protocol RandomSource: Sendable {
    func generator() -> any RandomNumberGenerator
}

extension RandomNumberGenerator {
    /// Fills `buffer` with draws, eight bytes at a time (key material and
    /// nonces from an injected source).
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while offset < buffer.count {
            var word = next()
            let count = min(8, buffer.count - offset)
            withUnsafeBytes(of: &word) { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + count)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
            }
            offset += count
        }
    }
}
