import DomicileNet
import Foundation

// Built two ways:
// - by Tests/Fuzz/run-http-fuzzer with `-sanitize=fuzzer,address -DDOMICILE_FUZZING`:
//   `main` hands control to libFuzzer (LLVMFuzzerRunDriver), which calls
//   the check with generated inputs. (SwiftPM renames an executable's entry
//   point, so libFuzzer's own `main` would never run.)
// - by a plain `swift build`: a replayer that runs files (the seed corpus)
//   through the same check.
@main
enum FuzzHTTPRequestParser {
    static func main() throws {
        #if DOMICILE_FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzHTTPRequestParser))
        #else
        try replay(CommandLine.arguments.dropFirst())
        #endif
    }

    static func replay(_ paths: ArraySlice<String>) throws {
        var count = 0
        for path in paths {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
                : [path]
            for file in files {
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
                bytes.withUnsafeBytes { HTTPParserFuzzing.check($0) }
                count += 1
            }
        }
        print("replayed \(count) inputs through the HTTP request parser check")
    }
}

#if DOMICILE_FUZZING
/// The fuzz target, under the name libFuzzer's library expects.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzHTTPRequestParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    HTTPParserFuzzing.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// libFuzzer's driver entry point (compiler-rt FuzzerInterface.h).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif
