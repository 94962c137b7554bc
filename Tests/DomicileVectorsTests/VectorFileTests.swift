import DomicileModel
import Foundation
import XCTest
@testable import DomicileVectors

/// `.npy` and `.fvecs` data sets for `domicile bench vectors --dataset`:
/// good files read back exactly; truncated, mistyped, malformed or
/// oversized ones are refused with a clear error before rows are allocated.
final class VectorFileTests: XCTestCase {
    static let rows: [[Float]] = (0..<5).map { row in (0..<3).map { Float(row * 10 + $0) + 0.25 } }

    /// An `.npy` file as NumPy writes it (version 1, data aligned to 64 bytes).
    static func npy(descr: String = "<f4", fortran: String = "False", shape: String = "(5, 3)", rows: [[Float]] = rows,
                    version: UInt8 = 1) -> [UInt8] {
        var header = Array("{'descr': '\(descr)', 'fortran_order': \(fortran), 'shape': \(shape), }".utf8)
        let preamble = version == 1 ? 10 : 12
        while (preamble + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let length = header.count
        bytes += version == 1 ? [UInt8(length & 0xFF), UInt8(length >> 8)] : (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) }
        bytes += header
        for value in rows.joined() { bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init) }
        return bytes
    }

    static func fvecs(_ rows: [[Float]] = rows, dimensions: [Int32]? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        for (index, row) in rows.enumerated() {
            bytes += withUnsafeBytes(of: (dimensions?[index] ?? Int32(row.count)).littleEndian, Array.init)
            for value in row { bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init) }
        }
        return bytes
    }

    func assertRefused(_ bytes: [UInt8], _ format: VectorFile.Format, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try VectorFile.decode(bytes, format: format), file: file, line: line) { error in
            let text = (error as? VectorFileError)?.description ?? "\(error)"
            XCTAssertTrue(text.contains(fragment), "\(text) does not say \(fragment)", file: file, line: line)
        }
    }

    func test_goodFiles_readBackEveryRow() throws {
        for bytes in [Self.npy(), Self.npy(version: 2), Self.npy(descr: "=f4")] {
            let vectors = try VectorFile.decode(bytes, format: .npy)
            XCTAssertEqual(vectors.dimension, 3)
            XCTAssertEqual((0..<vectors.count).map { vectors[$0] }, Self.rows)
        }
        let vectors = try VectorFile.decode(Self.fvecs(), format: .fvecs)
        XCTAssertEqual((0..<vectors.count).map { vectors[$0] }, Self.rows)
        // Through a file, and only the first rows when asked.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vector-files-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, bytes) in [("a.npy", Self.npy()), ("a.fvecs", Self.fvecs())] {
            let path = directory.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(try VectorFile.load(path).values, Self.rows.flatMap { $0 })
            XCTAssertEqual(try VectorFile.load(path, rowsMax: 2).count, 2)
        }
        XCTAssertThrowsError(try VectorFile.load(directory.appendingPathComponent("a.csv").path))
        XCTAssertThrowsError(try VectorFile.load(directory.appendingPathComponent("missing.npy").path))
    }

    func test_truncatedFiles_areRefused() {
        let npy = Self.npy(), fvecs = Self.fvecs()
        assertRefused(Array(npy.dropLast(1)), .npy, "truncated")
        assertRefused(Array(npy.prefix(40)), .npy, "truncated .npy header")
        assertRefused(Array(npy.prefix(5)), .npy, "magic")
        assertRefused(npy + [0], .npy, "bytes after")
        assertRefused(Array(fvecs.dropLast(4)), .fvecs, "truncated")
        assertRefused(Array(fvecs.prefix(2)), .fvecs, "truncated")
        assertRefused([], .fvecs, "truncated")
        // A row that declares another dimension than the first.
        assertRefused(Self.fvecs(dimensions: [3, 3, 3, 3, 3].enumerated().map { $0.offset == 2 ? 4 : $0.element }), .fvecs, "row 2")
    }

    func test_wrongTypeOrOrder_isRefused() {
        assertRefused(Self.npy(descr: "<f8"), .npy, "float32")
        assertRefused(Self.npy(descr: ">f4"), .npy, "float32")
        assertRefused(Self.npy(descr: "<i4"), .npy, "float32")
        assertRefused(Self.npy(fortran: "True"), .npy, "C order")
        assertRefused(Self.npy(shape: "(15,)"), .npy, "two dimensions")
        assertRefused(Self.npy(shape: "(5, 3, 1)"), .npy, "two dimensions")
        assertRefused(Self.npy(shape: "(5, 0)"), .npy, "dimension must be")
        assertRefused(Self.npy(shape: "(0, 3)", rows: []), .npy, "no rows")
        assertRefused(Self.npy(version: 9), .npy, "version 9")
        assertRefused(Self.fvecs(Self.rows, dimensions: [-3, 3, 3, 3, 3]), .fvecs, "dimension must be")
        assertRefused(Self.fvecs(Self.rows, dimensions: [5_000, 3, 3, 3, 3]), .fvecs, "dimension must be")
    }

    /// A header declaring far more rows than the file holds is refused
    /// from the header and the file size alone, before any row is allocated.
    func test_hugeDeclaredShape_isRefusedBeforeAllocating() throws {
        for shape in ["(461168601842738790, 3)", "(100000000000, 4096)", "(999999999999999999, 4096)", "(6, 3)"] {
            assertRefused(Self.npy(shape: shape), .npy, "more than the file")
            XCTAssertThrowsError(try VectorFile.layout(.npy, prefix: Self.npy(shape: shape), fileSize: Self.npy().count))
        }
        assertRefused(Self.npy(shape: "(1234567890123456789012, 3)"), .npy, "malformed")
        let layout = try VectorFile.layout(.npy, prefix: Self.npy(), fileSize: Self.npy().count)
        XCTAssertEqual(layout, VectorFile.Layout(rows: 5, dimension: 3, dataOffset: 128, rowPrefix: 0))
    }

    func test_malformedHeaders_areRefused() {
        for header in ["{'descr': '<f4', 'fortran_order': False}", "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), 'x': 1}",
                       "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (5, 3)}", "['<f4']",
                       "{'descr': <f4, 'fortran_order': False, 'shape': (5, 3)}", "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (5, 3)}",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (5, -3)}", "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3)} x",
                       "{'descr': '<f\\4', 'fortran_order': False, 'shape': (5, 3)}", "{'descr': '<f4", ""] {
            XCTAssertThrowsError(try NPYHeader(parsing: header), header)
        }
        XCTAssertEqual(try NPYHeader(parsing: #"{"descr": "<f4", "fortran_order": False, "shape": (2,3)}"#).shape, [2, 3])
    }

    /// Seeded mutations of good files (bytes flipped, cut, inserted): each
    /// either reads or is refused with a `VectorFileError`; none crashes.
    func test_mutatedFiles_neverCrash() {
        var random = SeededRandom(seed: 20_261_130)
        var refused = 0, read = 0
        for round in 0..<4_000 {
            var bytes = round % 2 == 0 ? Self.npy() : Self.fvecs()
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let position = Int(random.next() % UInt64(max(bytes.count, 1)))
                switch random.next() % 4 {
                case 0 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes = Array(bytes.prefix(position))
                case 2: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: min(position, bytes.count))
                default: if position < bytes.count { bytes[position] ^= 0x80 }
                }
            }
            do {
                let vectors = try VectorFile.decode(bytes, format: round % 2 == 0 ? .npy : .fvecs)
                XCTAssertEqual(vectors.values.count, vectors.count * vectors.dimension)
                read += 1
            } catch is VectorFileError {
                refused += 1
            } catch {
                XCTFail("not a VectorFileError: \(error)")
            }
        }
        XCTAssertGreaterThan(refused, 1_000)
        XCTAssertGreaterThan(read, 10, "mutations of float bytes alone still read")
    }
}
