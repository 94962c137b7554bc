import DomicileFuzzSupport
import DomicileVectors

// Fuzzes the `.npy` and `.fvecs` readers of `bench vectors --dataset`
// (Tests/Fuzz/run vectorfile): any bytes are read as both formats; each
// either decodes to whole rows or is refused with a `VectorFileError`.
@main
enum FuzzVectorFile {
    static func main() throws {
        try FuzzDriver.main(name: "vector file", entry: fuzzVectorFile) { check($0) }
    }

    static func check(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        for format in [VectorFile.Format.npy, .fvecs] {
            guard let vectors = try? VectorFile.decode(bytes, format: format) else { continue }
            precondition(vectors.count >= 1 && vectors.values.count == vectors.count * vectors.dimension, "a decoded file has whole rows")
            precondition(vectors.count * vectors.dimension * 4 <= bytes.count, "no more floats than the file holds")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzVectorFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzVectorFile.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
