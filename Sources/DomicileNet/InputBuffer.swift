import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Bytes received and not yet parsed. Consumption moves a start index;
/// storage is compacted when the dead prefix gets large, so a long-lived
/// keep-alive connection does not grow without bound.
struct InputBuffer {
    private(set) var bytes: [UInt8] = []
    private(set) var start = 0

    var count: Int { bytes.count - start }
    var isEmpty: Bool { count == 0 }

    subscript(offset: Int) -> UInt8 { bytes[start + offset] }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        compactIfNeeded()
        bytes.append(contentsOf: chunk)
    }

    mutating func append(_ chunk: [UInt8]) {
        compactIfNeeded()
        bytes.append(contentsOf: chunk)
    }

    /// The offset (from the unread start) of the first LF at or after `from`, if any.
    func firstLineFeed(from offset: Int, limit: Int) -> Int? {
        let end = min(count, limit)
        guard offset < end else { return nil }
        return bytes.withUnsafeBytes { raw -> Int? in
            let base = raw.baseAddress! + start
            guard let found = memchr(base + offset, 0x0A, end - offset) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
    }

    func slice(_ range: Range<Int>) -> ArraySlice<UInt8> { bytes[(start + range.lowerBound)..<(start + range.upperBound)] }

    mutating func consume(_ count: Int) {
        precondition(count <= self.count, "consuming more than was buffered")
        start += count
        if start == bytes.count {
            bytes.removeAll(keepingCapacity: bytes.capacity <= 64 * 1024)
            start = 0
        }
    }

    /// Removes and returns the first `count` bytes.
    mutating func take(_ count: Int) -> [UInt8] {
        let taken = Array(slice(0..<count))
        consume(count)
        return taken
    }

    private mutating func compactIfNeeded() {
        if start > 0 && (start >= 64 * 1024 || start * 2 >= bytes.count) {
            bytes.removeSubrange(0..<start)
            start = 0
        }
    }
}
