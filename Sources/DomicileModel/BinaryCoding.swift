/// Big-endian writer and bounds-checked reader for the project's binary
/// formats (sealed keyring, gossip packets, canonical signing encodings).
/// Every format built on these is described in docs/FORMATS.md.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }
    public mutating func write(_ value: UInt16) { append(value) }
    public mutating func write(_ value: UInt32) { append(value) }
    public mutating func write(_ value: UInt64) { append(value) }
    public mutating func write(_ value: Int64) { append(UInt64(bitPattern: value)) }
    public mutating func write<Bytes: Sequence<UInt8>>(raw: Bytes) { bytes.append(contentsOf: raw) }

    /// A length-prefixed (u16) byte string.
    public mutating func write16<Bytes: Collection<UInt8>>(prefixed value: Bytes) {
        precondition(value.count <= Int(UInt16.max), "a u16-prefixed field holds at most 65535 bytes")
        write(UInt16(value.count))
        bytes.append(contentsOf: value)
    }

    /// A length-prefixed (u8) UTF-8 string.
    public mutating func write8(string value: String) {
        precondition(value.utf8.count <= Int(UInt8.max), "a u8-prefixed string holds at most 255 bytes")
        write(UInt8(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }

    private mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}

public struct BinaryReader {
    private let bytes: [UInt8]
    public private(set) var offset: Int
    /// Names the structure being read, for errors.
    private let what: String

    public init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.offset = 0
        self.what = what
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func readUInt8() throws(ModelError) -> UInt8 { try read(UInt8.self) }
    public mutating func readUInt16() throws(ModelError) -> UInt16 { try read(UInt16.self) }
    public mutating func readUInt32() throws(ModelError) -> UInt32 { try read(UInt32.self) }
    public mutating func readUInt64() throws(ModelError) -> UInt64 { try read(UInt64.self) }
    public mutating func readInt64() throws(ModelError) -> Int64 { Int64(bitPattern: try read(UInt64.self)) }

    public mutating func readBytes(_ count: Int) throws(ModelError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated(what: what) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    public mutating func read16Prefixed() throws(ModelError) -> [UInt8] {
        try readBytes(Int(try readUInt16()))
    }

    public mutating func read8String() throws(ModelError) -> String {
        let raw = try readBytes(Int(try readUInt8()))
        guard let text = String(validating: raw, as: UTF8.self) else { throw .invalidEncoding(what: what) }
        return text
    }

    private mutating func read<T: FixedWidthInteger>(_: T.Type) throws(ModelError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(what: what) }
        var value: T = 0
        for index in 0..<size { value = value << 8 | T(bytes[offset + index]) }
        offset += size
        return value
    }
}
