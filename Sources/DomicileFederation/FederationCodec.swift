import DomicileModel

/// The federation's wire format, version 1 (docs/FORMATS.md, "Federation
/// records and exchange"): big-endian integers, u8-prefixed UTF-8 strings,
/// doubles as their IEEE 754 bits. The decoder checks every count and length
/// against its bound and against the bytes that remain before it allocates,
/// refuses another version, an unknown message type or record kind and
/// trailing bytes, and never traps, whatever the bytes.
public enum FederationCodec {
    public static let version: UInt8 = 1
    /// A message: the decoder refuses longer input before reading it.
    public static let messageBytesMax = 8 << 20
    /// One record's body.
    public static let recordBytesMax = 1 << 20
    /// Entries in one `deltas` message.
    public static let entriesMax = 65_536

    enum MessageType: UInt8 {
        case digest = 1
        case deltas = 2
    }

    // MARK: Messages

    public static func encode(_ envelope: FederationEnvelope) throws(FederationError) -> [UInt8] {
        var writer = BinaryWriter(capacity: 256)
        writer.write(version)
        switch envelope.message {
        case .digest: writer.write(MessageType.digest.rawValue)
        case .deltas: writer.write(MessageType.deltas.rawValue)
        }
        writer.write(region: envelope.from)
        writer.write(region: envelope.to)
        switch envelope.message {
        case .digest(let vector):
            try writer.write(vector: vector)
        case .deltas(let entries, let digest, let more):
            guard entries.count <= entriesMax else { throw .malformed("more than \(entriesMax) entries") }
            writer.write(UInt8((more ? 1 : 0) | (digest != nil ? 2 : 0)))
            if let digest { try writer.write(vector: digest) }
            writer.write(UInt32(entries.count))
            for entry in entries { try write(entry, to: &writer) }
        }
        guard writer.bytes.count <= messageBytesMax else { throw .malformed("message over \(messageBytesMax) bytes") }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(FederationError) -> FederationEnvelope {
        guard bytes.count <= messageBytesMax else { throw .malformed("message over \(messageBytesMax) bytes") }
        var reader = FederationReader(bytes)
        guard try reader.uint8() == version else { throw .malformed("unknown version") }
        guard let type = MessageType(rawValue: try reader.uint8()) else { throw .malformed("unknown message type") }
        let from = try reader.region()
        let to = try reader.region()
        let message: FederationMessage
        switch type {
        case .digest:
            message = .digest(try reader.vector())
        case .deltas:
            let flags = try reader.uint8()
            guard flags & ~3 == 0 else { throw .malformed("unknown flags") }
            let digest = flags & 2 != 0 ? try reader.vector() : nil
            let count = try reader.count(UInt32.self, max: entriesMax, elementBytesMin: entryBytesMin)
            var entries: [FederationEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count { entries.append(try readEntry(&reader)) }
            message = .deltas(entries: entries, digest: digest, more: flags & 1 != 0)
        }
        guard reader.isAtEnd else { throw .malformed("trailing bytes") }
        return FederationEnvelope(from: from, to: to, message: message)
    }

    // MARK: Entries

    /// origin (2) · seq (8) · kind (1) · held flag (1): a placeholder's size.
    static let entryBytesMin = 12

    static func write(_ entry: FederationEntry, to writer: inout BinaryWriter) throws(FederationError) {
        writer.write(region: entry.origin)
        writer.write(entry.seq)
        writer.write(entry.body.kind.rawValue)
        switch entry.body {
        case .skipped:
            writer.write(UInt8(0))
        case .retired:
            writer.write(UInt8(2))
        case .record(let record):
            let body = try encode(record)
            writer.write(UInt8(1))
            writer.write(UInt32(body.count))
            writer.write(raw: body)
        }
    }

    static func readEntry(_ reader: inout FederationReader) throws(FederationError) -> FederationEntry {
        let origin = try reader.region()
        let seq = try reader.uint64()
        guard seq >= 1, seq <= seqMax else { throw .malformed("sequence number out of range") }
        guard let kind = FederationRecordKind(rawValue: try reader.uint8()) else { throw .malformed("unknown record kind") }
        switch try reader.uint8() {
        case 0:
            return FederationEntry(origin: origin, seq: seq, body: .skipped(kind))
        case 2:
            // Only a noised embedding is ever retired: any other retired kind would stall its origin everywhere.
            guard kind == .noisedEmbedding else { throw .malformed("a retired placeholder of a kind that is never retired") }
            return FederationEntry(origin: origin, seq: seq, body: .retired(kind))
        case 1:
            let length = try reader.count(UInt32.self, max: recordBytesMax, elementBytesMin: 1)
            let record = try decodeRecord(kind, try reader.bytes(length))
            return FederationEntry(origin: origin, seq: seq, body: .record(record))
        default:
            throw .malformed("unknown entry flag")
        }
    }

    /// The encoded size of an entry whose record body is `bodyBytes` long
    /// (nil: a placeholder), as `write(_:to:)` writes it.
    static func entrySize(origin: RegionID, bodyBytes: Int?) -> Int {
        1 + origin.rawValue.utf8.count + 8 + 1 + 1 + (bodyBytes.map { 4 + $0 } ?? 0)
    }

    /// The encoded size of a `deltas` message's fixed part and its digest.
    static func deltasHeaderSize(from: RegionID, to: RegionID, digest: VersionVector?) -> Int {
        2 + 1 + from.rawValue.utf8.count + 1 + to.rawValue.utf8.count + 1 + (digest.map(vectorSize) ?? 0) + 4
    }

    static func vectorSize(_ vector: VersionVector) -> Int {
        2 + vector.seqs.keys.reduce(0) { $0 + 1 + $1.rawValue.utf8.count + 8 }
    }

    /// Sequence numbers stay far below overflow (an honest origin never gets near).
    static let seqMax: UInt64 = 1 << 62

    // MARK: Records

    /// A record's body. Refuses (never traps on) a record no decoder would
    /// accept back, and one over `recordBytesMax`.
    public static func encode(_ record: FederationRecord) throws(FederationError) -> [UInt8] {
        var writer = BinaryWriter(capacity: 512)
        switch record {
        case .aggregate(let release): try write(release, to: &writer)
        case .erasureIntent(let intent): try write(intent, to: &writer)
        case .erasureAck(let ack): try write(ack, to: &writer)
        case .noisedEmbedding(let embedding): try write(embedding, to: &writer)
        }
        guard writer.bytes.count <= recordBytesMax else { throw .recordTooLarge(bytes: writer.bytes.count) }
        return writer.bytes
    }

    public static func decodeRecord(_ kind: FederationRecordKind, _ bytes: [UInt8]) throws(FederationError) -> FederationRecord {
        guard bytes.count <= recordBytesMax else { throw .recordTooLarge(bytes: bytes.count) }
        var reader = FederationReader(bytes)
        let record: FederationRecord
        switch kind {
        case .aggregate: record = .aggregate(try readRelease(&reader))
        case .erasureIntent: record = .erasureIntent(try readIntent(&reader))
        case .erasureAck: record = .erasureAck(try readAck(&reader))
        case .noisedEmbedding: record = .noisedEmbedding(try readEmbedding(&reader))
        }
        guard reader.isAtEnd else { throw .malformed("trailing bytes in a record") }
        return record
    }
}

// MARK: Writing and reading the shared pieces

extension BinaryWriter {
    mutating func write(region: RegionID) { write8(string: region.rawValue) }

    /// A u8-prefixed string that the record's validation already bounded;
    /// refused (not trapped on) otherwise.
    mutating func write(short text: String) throws(FederationError) {
        guard text.utf8.count <= Int(UInt8.max) else { throw .invalidRecord("a string over 255 bytes") }
        write8(string: text)
    }

    mutating func write(double value: Double) { write(value.bitPattern) }

    mutating func write(vector: VersionVector) throws(FederationError) {
        guard vector.seqs.count <= VersionVector.regionsMax else { throw .malformed("a vector of more than \(VersionVector.regionsMax) regions") }
        write(UInt16(vector.seqs.count))
        for origin in vector.origins {
            write(region: origin)
            write(vector[origin])
        }
    }
}

/// A bounds-checked big-endian reader whose every error is a
/// `FederationError`. It reads the array itself (not through
/// `BinaryReader`) so that this module's optimization applies to it: the
/// simulator decodes every message of hundreds of runs.
struct FederationReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }
    var remaining: Int { bytes.count - offset }

    mutating func uint8() throws(FederationError) -> UInt8 {
        guard remaining >= 1 else { throw .malformed("truncated") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint16() throws(FederationError) -> UInt16 { UInt16(truncatingIfNeeded: try integer(2)) }
    mutating func uint32() throws(FederationError) -> UInt32 { UInt32(truncatingIfNeeded: try integer(4)) }
    mutating func uint64() throws(FederationError) -> UInt64 { try integer(8) }
    mutating func int64() throws(FederationError) -> Int64 { Int64(bitPattern: try uint64()) }
    mutating func double() throws(FederationError) -> Double { Double(bitPattern: try uint64()) }

    mutating func bytes(_ count: Int) throws(FederationError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .malformed("truncated") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    private mutating func integer(_ size: Int) throws(FederationError) -> UInt64 {
        guard remaining >= size else { throw .malformed("truncated") }
        var value: UInt64 = 0
        for index in offset..<offset + size { value = value << 8 | UInt64(bytes[index]) }
        offset += size
        return value
    }

    mutating func flag() throws(FederationError) -> Bool {
        switch try uint8() {
        case 0: return false
        case 1: return true
        default: throw .malformed("a flag is 0 or 1")
        }
    }

    /// A u8-prefixed UTF-8 string.
    mutating func string() throws(FederationError) -> String {
        let length = Int(try uint8())
        guard remaining >= length else { throw .malformed("truncated") }
        defer { offset += length }
        guard let text = String(validating: bytes[offset..<offset + length], as: UTF8.self) else { throw .malformed("invalid UTF-8") }
        return text
    }

    mutating func region() throws(FederationError) -> RegionID {
        guard let region = try? RegionID(try string()) else { throw .malformed("invalid region id") }
        return region
    }

    mutating func name(_ what: String) throws(FederationError) -> Name {
        guard let name = try? Name(try string(), what: what) else { throw .invalidRecord(what) }
        return name
    }

    /// A count, refused before anything is allocated when it exceeds `max`
    /// or when even the smallest elements could not fit in what remains.
    mutating func count<T: FixedWidthInteger>(_: T.Type, max: Int, elementBytesMin: Int) throws(FederationError) -> Int {
        let raw: UInt64
        switch T.bitWidth {
        case 8: raw = UInt64(try uint8())
        case 16: raw = UInt64(try uint16())
        default: raw = UInt64(try uint32())
        }
        guard raw <= UInt64(max) else { throw .malformed("a count over its bound") }
        let count = Int(raw)
        guard count <= remaining / Swift.max(elementBytesMin, 1) else { throw .malformed("a count beyond the bytes that remain") }
        return count
    }

    mutating func vector() throws(FederationError) -> VersionVector {
        let count = try count(UInt16.self, max: VersionVector.regionsMax, elementBytesMin: 10)
        var seqs: [RegionID: UInt64] = [:]
        var previous: RegionID?
        for _ in 0..<count {
            let origin = try region()
            guard previous.map({ $0 < origin }) ?? true else { throw .malformed("vector regions not strictly increasing") }
            previous = origin
            let seq = try uint64()
            guard seq >= 1, seq <= FederationCodec.seqMax else { throw .malformed("vector sequence out of range") }
            seqs[origin] = seq
        }
        return VersionVector(seqs)
    }
}
