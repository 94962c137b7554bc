import DomicileCrypto
import DomicileModel
import Foundation

/// Finds known values ("canaries") in raw bytes, in every form Domicile or
/// a careless component could have written them: identifiers raw,
/// normalized and encoded; feature values as text and as numbers; vectors
/// as runs of their components in single and double precision, binary and
/// text (docs/TESTING.md, "Residency and erasure scans").
///
/// Every form is a byte string (a "needle") of at least `needleBytesMin`
/// bytes. The scan looks at each offset's first four bytes in a bit filter
/// (one load and one test per byte of input), and only where the filter
/// says a needle may start does it compare; so its cost is one pass over
/// the bytes, whatever the number of needles.
struct CanaryScanner {
    /// Shorter forms would match by chance (a 3-byte needle occurs in a few
    /// megabytes of random data); they are reported as not scanned.
    static let needleBytesMin = 4
    /// Vector components per binary window: 16 bytes of `Float`, matching
    /// 2⁻¹²⁸ of random positions; 2 of `Double` for the same length.
    static let floatWindow = 4
    static let doubleWindow = 2

    struct Needle: Equatable {
        let bytes: [UInt8]
        /// Which canary: `identifiers[0]`, `features[2]`, `vectors[1]`.
        let canary: String
        /// Which form of it: `normalized`, `float32le[3...6]`, …
        let form: String
    }

    struct Match: Equatable {
        let offset: Int
        let needle: Int
    }

    let needles: [Needle]
    /// Forms shorter than `needleBytesMin`, which are not looked for.
    let skipped: [Needle]
    let longest: Int
    private let starts: [UInt32: [Int]]
    private let filter: [UInt64]
    private static let filterBits = 20

    init(_ needles: [Needle]) {
        var kept: [Needle] = []
        var skipped: [Needle] = []
        var seen = Set<[UInt8]>()
        for needle in needles {
            if needle.bytes.count < Self.needleBytesMin { skipped.append(needle) }
            else if seen.insert(needle.bytes + Array("\u{0}\(needle.canary)".utf8)).inserted { kept.append(needle) }
        }
        var starts: [UInt32: [Int]] = [:]
        var filter = [UInt64](repeating: 0, count: (1 << Self.filterBits) / 64)
        for (index, needle) in kept.enumerated() {
            let prefix = Self.prefix(needle.bytes)
            starts[prefix, default: []].append(index)
            let bit = Self.slot(prefix)
            filter[bit >> 6] |= 1 << UInt64(bit & 63)
        }
        self.needles = kept
        self.skipped = skipped
        self.longest = kept.map(\.bytes.count).max() ?? 0
        self.starts = starts
        self.filter = filter
    }

    private static func prefix(_ bytes: [UInt8]) -> UInt32 {
        UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    }

    private static func slot(_ prefix: UInt32) -> Int {
        Int((prefix &* 0x9E37_79B1) >> UInt32(32 - filterBits))
    }

    /// The needles found in `bytes`, by offset then needle. A match that
    /// ends at or before `reportAfter` is left out (the caller reported it
    /// from the previous chunk, which ended there).
    func matches(in bytes: UnsafeRawBufferPointer, reportAfter: Int = 0) -> [Match] {
        guard bytes.count >= Self.needleBytesMin, !needles.isEmpty else { return [] }
        var found: [Match] = []
        filter.withUnsafeBufferPointer { filter in
            for offset in 0...(bytes.count - Self.needleBytesMin) {
                let prefix = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian
                let bit = Self.slot(prefix)
                guard filter[bit >> 6] & (1 << UInt64(bit & 63)) != 0, let candidates = starts[prefix] else { continue }
                for index in candidates {
                    let needle = needles[index].bytes
                    let end = offset + needle.count
                    guard end <= bytes.count, end > reportAfter else { continue }
                    if needle.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress! + offset, needle.count) == 0 }) {
                        found.append(Match(offset: offset, needle: index))
                    }
                }
            }
        }
        return found
    }

    /// What a file holds: its size, SHA-256 and matches.
    struct FileScan {
        let byteCount: Int
        let sha256: [UInt8]
        let matches: [Match]
    }

    /// Scans the file at `path`, read in chunks of `chunkBytes` that
    /// overlap by the longest needle less one byte, so a match across two
    /// chunks is found once. Keeps at most `limit` matches.
    func scan(fileAt path: String, chunkBytes: Int = 8 << 20, limit: Int = 10_000) throws -> FileScan {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw CLIError.failed("\(path): cannot be opened (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }
        let carryMax = max(0, longest - 1)
        let hasher = SHA256.Hasher()
        var buffer = [UInt8](repeating: 0, count: carryMax + chunkBytes)
        var carried = 0
        var consumed = 0
        var found: [Match] = []
        while true {
            let read = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + carried, chunkBytes) }
            guard read >= 0 else { throw CLIError.failed("\(path): read failed (\(String(cString: strerror(errno))))") }
            if read == 0 { break }
            let filled = carried + read
            let base = consumed - carried
            buffer.withUnsafeBytes { bytes in
                hasher.update(UnsafeRawBufferPointer(rebasing: bytes[carried..<filled]))
                if found.count < limit {
                    found += matches(in: UnsafeRawBufferPointer(rebasing: bytes[0..<filled]), reportAfter: carried)
                        .map { Match(offset: base + $0.offset, needle: $0.needle) }
                }
            }
            consumed += read
            carried = min(carryMax, filled)
            buffer.withUnsafeMutableBytes { _ = memmove($0.baseAddress!, $0.baseAddress! + (filled - carried), carried) }
        }
        return FileScan(byteCount: consumed, sha256: hasher.finalize(), matches: Array(found.prefix(limit)))
    }
}

// MARK: Forms

extension CanaryScanner {
    /// The forms of an identifier: as given, normalized (the form Domicile
    /// hashes), uppercase, and the normalized form in base64, base64url,
    /// hex and UTF-16; a phone number also without its `+`.
    static func forms(ofIdentifier kind: IdentifierKind, _ raw: String, canary: String) -> [Needle] {
        let normalized = (try? Identifier(kind: kind, raw: raw))?.value ?? raw
        var forms: [(String, [UInt8])] = [("raw", Array(raw.utf8)), ("normalized", Array(normalized.utf8)),
                                          ("uppercase", Array(normalized.uppercased().utf8))]
        forms += encodedForms(of: Array(normalized.utf8))
        forms.append(("utf16le", normalized.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }))
        if kind == .phone, normalized.hasPrefix("+") { forms.append(("digits", Array(normalized.dropFirst().utf8))) }
        return forms.map { Needle(bytes: $0.1, canary: canary, form: $0.0) }
    }

    /// The forms of a feature value: a string as text and encoded; a number
    /// as text and as the binary `Double`, `Float` and (when whole) `Int64`.
    static func forms(ofFeature value: FeatureCanary, canary: String) -> [Needle] {
        var forms: [(String, [UInt8])] = []
        switch value {
        case .text(let text):
            forms.append(("text", Array(text.utf8)))
            forms += encodedForms(of: Array(text.utf8))
        case .number(let number):
            forms.append(("text", Array("\(number)".utf8)))
            forms.append(("float64le", bytes(of: number.bitPattern.littleEndian)))
            forms.append(("float64be", bytes(of: number.bitPattern.bigEndian)))
            forms.append(("float32le", bytes(of: Float(number).bitPattern.littleEndian)))
            if number == number.rounded(), let whole = Int64(exactly: number) {
                forms.append(("int64le", bytes(of: whole.littleEndian)))
                forms.append(("int64be", bytes(of: whole.bigEndian)))
            }
        }
        return forms.map { Needle(bytes: $0.1, canary: canary, form: $0.0) }
    }

    /// The forms of a vector: every run of `floatWindow` consecutive
    /// components as little-endian `Float` (how Domicile's indexes hold
    /// them), of `doubleWindow` as `Double` (how JSON decodes them), and
    /// the first components as text as a client sends them.
    static func forms(ofVector vector: [Double], canary: String) -> [Needle] {
        var needles: [Needle] = []
        let floats = vector.map { Float($0) }
        if floats.count >= floatWindow {
            for start in 0...(floats.count - floatWindow) {
                let window = floats[start..<(start + floatWindow)].flatMap { Self.bytes(of: $0.bitPattern.littleEndian) }
                needles.append(Needle(bytes: window, canary: canary, form: "float32le[\(start)...\(start + floatWindow - 1)]"))
            }
        }
        if vector.count >= doubleWindow {
            for start in 0...(vector.count - doubleWindow) {
                let window = vector[start..<(start + doubleWindow)].flatMap { Self.bytes(of: $0.bitPattern.littleEndian) }
                needles.append(Needle(bytes: window, canary: canary, form: "float64le[\(start)...\(start + doubleWindow - 1)]"))
            }
        }
        if vector.count >= 2 {
            let head = vector.prefix(3)
            needles.append(Needle(bytes: Array(head.map { "\($0)" }.joined(separator: ",").utf8), canary: canary, form: "text"))
            needles.append(Needle(bytes: Array(head.map { "\(Float($0))" }.joined(separator: ",").utf8), canary: canary, form: "text32"))
        }
        return needles
    }

    private static func encodedForms(of bytes: [UInt8]) -> [(String, [UInt8])] {
        [("base64", Array(Base64.encode(bytes).utf8)), ("base64url", Array(Base64.encodeURL(bytes).utf8)),
         ("hex", Array(Hex.encode(bytes).utf8))]
    }

    private static func bytes<T: FixedWidthInteger>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value, Array.init)
    }
}

/// A feature value to look for, as the canaries file gives it: a JSON
/// string or number.
enum FeatureCanary: Equatable, Decodable {
    case text(String)
    case number(Double)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) { self = .text(text) } else { self = .number(try container.decode(Double.self)) }
    }
}
