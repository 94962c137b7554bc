import Foundation

/// Real embeddings from a file, for `domicile bench vectors --dataset`:
/// NumPy's `.npy` (float32, C order, two dimensions) and the `.fvecs` of
/// the ANN benchmarks (per row: a little-endian int32 dimension, then that
/// many little-endian float32). The header is checked against the file's
/// size before anything is allocated for the rows, so a malformed or
/// hostile file is refused with a `VectorFileError`, never a crash or a
/// huge allocation (docs/FORMATS.md, "Vector data sets").
public enum VectorFile {
    public enum Format: String, Sendable {
        case npy, fvecs

        /// The format a path's extension names.
        public init(path: String) throws(VectorFileError) {
            if path.hasSuffix(".npy") { self = .npy } else if path.hasSuffix(".fvecs") { self = .fvecs } else {
                throw VectorFileError("the file must end in .npy or .fvecs")
            }
        }
    }

    /// Where the rows are in a file.
    public struct Layout: Sendable, Equatable {
        public let rows: Int
        public let dimension: Int
        /// Offset of the first row.
        public let dataOffset: Int
        /// Bytes before each row's floats (the `.fvecs` dimension word).
        public let rowPrefix: Int

        var rowBytes: Int { rowPrefix + dimension * 4 }
    }

    /// Widest vector read (the node's collection limit).
    public static let dimensionMax = 4_096
    /// Longest `.npy` header read.
    public static let npyHeaderBytesMax = 65_536
    /// Bytes of a file's start that always hold its header.
    public static let prefixBytes = 10 + npyHeaderBytesMax

    // MARK: Headers

    /// The layout of a file of `fileSize` bytes that starts with `prefix`
    /// (at least `min(fileSize, prefixBytes)` bytes of it).
    public static func layout(_ format: Format, prefix: [UInt8], fileSize: Int) throws(VectorFileError) -> Layout {
        switch format {
        case .npy: return try npyLayout(prefix: prefix, fileSize: fileSize)
        case .fvecs: return try fvecsLayout(prefix: prefix, fileSize: fileSize)
        }
    }

    static let npyMagic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    static func npyLayout(prefix: [UInt8], fileSize: Int) throws(VectorFileError) -> Layout {
        guard prefix.count >= 10, Array(prefix[0..<6]) == npyMagic else { throw VectorFileError("not an .npy file (no \\x93NUMPY magic)") }
        let major = prefix[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(prefix[8]) | Int(prefix[9]) << 8
            headerStart = 10
        case 2, 3:
            guard prefix.count >= 12 else { throw VectorFileError("truncated .npy header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(prefix[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw VectorFileError(".npy version \(major) is not supported (1, 2 or 3)")
        }
        guard headerLength <= npyHeaderBytesMax else { throw VectorFileError(".npy header longer than \(npyHeaderBytesMax) bytes") }
        guard headerStart + headerLength <= prefix.count, headerStart + headerLength <= fileSize else {
            throw VectorFileError("truncated .npy header")
        }
        guard let text = String(bytes: prefix[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
            throw VectorFileError(".npy header is not text")
        }
        let header = try NPYHeader(parsing: text)
        guard header.descr == "<f4" || header.descr == "=f4" && 1.littleEndian == 1 else {
            throw VectorFileError(".npy dtype must be little-endian float32 ('<f4'), not '\(header.descr.prefix(16))'")
        }
        guard !header.fortranOrder else { throw VectorFileError(".npy array must be in C order (fortran_order False)") }
        guard header.shape.count == 2 else { throw VectorFileError(".npy array must have two dimensions (rows, dimension), not \(header.shape.count)") }
        return try checked(rows: header.shape[0], dimension: header.shape[1], dataOffset: headerStart + headerLength, rowPrefix: 0,
                           fileSize: fileSize)
    }

    static func fvecsLayout(prefix: [UInt8], fileSize: Int) throws(VectorFileError) -> Layout {
        guard prefix.count >= 4, fileSize >= 4 else { throw VectorFileError("empty or truncated .fvecs file") }
        let word = UInt32(prefix[0]) | UInt32(prefix[1]) << 8 | UInt32(prefix[2]) << 16 | UInt32(prefix[3]) << 24
        let dimension = Int(Int32(bitPattern: word))
        guard (1...dimensionMax).contains(dimension) else {
            throw VectorFileError(".fvecs row dimension must be 1 to \(dimensionMax), found \(dimension)")
        }
        let rowBytes = 4 + dimension * 4
        guard fileSize % rowBytes == 0 else {
            throw VectorFileError(".fvecs size \(fileSize) is not a whole number of rows of dimension \(dimension) (truncated?)")
        }
        return try checked(rows: fileSize / rowBytes, dimension: dimension, dataOffset: 0, rowPrefix: 4, fileSize: fileSize)
    }

    /// The layout, once the declared rows fit the file exactly.
    private static func checked(rows: Int, dimension: Int, dataOffset: Int, rowPrefix: Int, fileSize: Int) throws(VectorFileError) -> Layout {
        guard (1...dimensionMax).contains(dimension) else { throw VectorFileError("dimension must be 1 to \(dimensionMax), found \(dimension)") }
        guard rows >= 1 else { throw VectorFileError("the file holds no rows") }
        let (rowsBytes, overflow) = rows.multipliedReportingOverflow(by: rowPrefix + dimension * 4)
        guard !overflow, rowsBytes <= fileSize - dataOffset else {
            throw VectorFileError("the header declares \(rows) × \(dimension) floats, more than the file's \(fileSize) bytes hold (truncated?)")
        }
        guard rowsBytes == fileSize - dataOffset else {
            throw VectorFileError("the file has \(fileSize - dataOffset - rowsBytes) bytes after its \(rows) × \(dimension) floats")
        }
        return Layout(rows: rows, dimension: dimension, dataOffset: dataOffset, rowPrefix: rowPrefix)
    }

    // MARK: Reading

    /// The vectors of a whole file held in memory.
    public static func decode(_ bytes: [UInt8], format: Format) throws(VectorFileError) -> SyntheticVectors {
        let layout = try layout(format, prefix: Array(bytes.prefix(prefixBytes)), fileSize: bytes.count)
        var values = [Float](repeating: 0, count: layout.rows * layout.dimension)
        let problem = bytes.withUnsafeBytes { raw -> VectorFileError? in
            for row in 0..<layout.rows {
                let start = layout.dataOffset + row * layout.rowBytes
                let rowBytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + layout.rowBytes)])
                if let problem = decodeRow(rowBytes, row: row, layout: layout, into: &values) { return problem }
            }
            return nil
        }
        if let problem { throw problem }
        return SyntheticVectors(dimension: layout.dimension, values: values)
    }

    /// The first `rowsMax` rows (all when nil) of the file at `path`.
    public static func load(_ path: String, rowsMax: Int? = nil) throws(VectorFileError) -> SyntheticVectors {
        let format = try Format(path: path)
        guard let file = fopen(path, "rb") else { throw VectorFileError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { fclose(file) }
        guard fseeko(file, 0, SEEK_END) == 0 else { throw VectorFileError("cannot read \(path)") }
        let fileSize = Int(ftello(file))
        rewind(file)
        var prefix = [UInt8](repeating: 0, count: min(fileSize, prefixBytes))
        guard fread(&prefix, 1, prefix.count, file) == prefix.count else { throw VectorFileError("cannot read \(path)") }
        let layout = try layout(format, prefix: prefix, fileSize: fileSize)
        let rows = min(layout.rows, rowsMax ?? layout.rows)
        guard fseeko(file, off_t(layout.dataOffset), SEEK_SET) == 0 else { throw VectorFileError("cannot read \(path)") }
        var values = [Float](repeating: 0, count: rows * layout.dimension)
        var row = [UInt8](repeating: 0, count: layout.rowBytes)
        for index in 0..<rows {
            guard fread(&row, 1, row.count, file) == row.count else { throw VectorFileError("\(path) ended early (changed while read?)") }
            if let problem = row.withUnsafeBytes({ decodeRow($0, row: index, layout: layout, into: &values) }) { throw problem }
        }
        return SyntheticVectors(dimension: layout.dimension, values: values)
    }

    /// One row's floats into `values`; an `.fvecs` row must declare the
    /// first row's dimension (else the problem is returned).
    private static func decodeRow(_ raw: UnsafeRawBufferPointer, row: Int, layout: Layout, into values: inout [Float]) -> VectorFileError? {
        if layout.rowPrefix == 4 {
            let dimension = Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: Int32.self))
            guard dimension == layout.dimension else {
                return VectorFileError(".fvecs row \(row) has dimension \(dimension), not \(layout.dimension)")
            }
        }
        let base = row * layout.dimension
        for column in 0..<layout.dimension {
            let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: layout.rowPrefix + column * 4, as: UInt32.self))
            values[base + column] = Float(bitPattern: bits)
        }
        return nil
    }
}

/// Why a vector file cannot be read.
public struct VectorFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}

/// The Python dict literal of an `.npy` header:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 384), }`.
/// Only that grammar (single- or double-quoted keys and strings, True or
/// False, a tuple of integers) is read; anything else is refused.
struct NPYHeader: Equatable {
    var descr = ""
    var fortranOrder = false
    var shape: [Int] = []

    init(parsing text: String) throws(VectorFileError) {
        var scanner = Scanner(Array(text.utf8))
        var seen: Set<String> = []
        try scanner.expect(UInt8(ascii: "{"))
        while true {
            scanner.skipSpace()
            if scanner.take(UInt8(ascii: "}")) { break }
            let key = try scanner.string()
            guard seen.insert(key).inserted else { throw VectorFileError(".npy header repeats '\(key.prefix(32))'") }
            scanner.skipSpace()
            try scanner.expect(UInt8(ascii: ":"))
            scanner.skipSpace()
            switch key {
            case "descr": descr = try scanner.string()
            case "fortran_order": fortranOrder = try scanner.boolean()
            case "shape": shape = try scanner.tuple()
            default: throw VectorFileError(".npy header has an unknown key '\(key.prefix(32))'")
            }
            scanner.skipSpace()
            if scanner.take(UInt8(ascii: ",")) { continue }
            scanner.skipSpace()
            try scanner.expect(UInt8(ascii: "}"))
            break
        }
        guard seen == ["descr", "fortran_order", "shape"] else { throw VectorFileError(".npy header lacks descr, fortran_order or shape") }
        scanner.skipSpace()
        guard scanner.atEnd else { throw VectorFileError(".npy header has text after its dict") }
    }

    private struct Scanner {
        let bytes: [UInt8]
        var position = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { position == bytes.count }

        mutating func skipSpace() {
            while position < bytes.count, bytes[position] == 0x20 || bytes[position] == 0x0A || bytes[position] == 0x09 { position += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        mutating func expect(_ byte: UInt8) throws(VectorFileError) {
            guard take(byte) else { throw VectorFileError("malformed .npy header (expected '\(Character(Unicode.Scalar(byte)))')") }
        }

        mutating func string() throws(VectorFileError) -> String {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "'") || bytes[position] == UInt8(ascii: "\"") else {
                throw VectorFileError("malformed .npy header (expected a string)")
            }
            let quote = bytes[position]
            position += 1
            let start = position
            while position < bytes.count, bytes[position] != quote {
                guard bytes[position] != UInt8(ascii: "\\") else { throw VectorFileError("malformed .npy header (escape in a string)") }
                position += 1
            }
            guard position < bytes.count else { throw VectorFileError("malformed .npy header (unterminated string)") }
            defer { position += 1 }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        mutating func boolean() throws(VectorFileError) -> Bool {
            for (word, value) in [("True", true), ("False", false)] where bytes[position...].starts(with: word.utf8) {
                position += word.utf8.count
                return value
            }
            throw VectorFileError("malformed .npy header (expected True or False)")
        }

        /// `(3,)`, `(1000, 384)`, `()`: non-negative integers of at most 18 digits.
        mutating func tuple() throws(VectorFileError) -> [Int] {
            try expect(UInt8(ascii: "("))
            var values: [Int] = []
            while true {
                skipSpace()
                if take(UInt8(ascii: ")")) { return values }
                let start = position
                var value = 0
                while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]), position - start < 18 {
                    value = value * 10 + Int(bytes[position] - UInt8(ascii: "0"))
                    position += 1
                }
                guard position > start else { throw VectorFileError("malformed .npy header (expected a non-negative integer in shape)") }
                guard values.count < 32 else { throw VectorFileError("malformed .npy header (shape has too many dimensions)") }
                values.append(value)
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                skipSpace()
                try expect(UInt8(ascii: ")"))
                return values
            }
        }
    }
}
