import Foundation

/// The `main` of Domicile's fuzz targets. Built with `-DDOMICILE_FUZZING`
/// (Tests/Fuzz/run), it hands control to libFuzzer (SwiftPM renames an
/// executable's entry point, so libFuzzer's own `main` never runs) with the
/// target's `LLVMFuzzerTestOneInput`. Built plainly, it replays the files and
/// directories named on the command line through the same check.
public enum FuzzDriver {
    public typealias Entry = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

    public static func main(name: String, entry: Entry, check: (UnsafeRawBufferPointer) -> Void) throws {
        #if DOMICILE_FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, entry))
        #else
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
                : [path]
            for file in files {
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
                bytes.withUnsafeBytes { check($0) }
                count += 1
            }
        }
        print("replayed \(count) inputs through the \(name) check")
        #endif
    }
}

#if DOMICILE_FUZZING
/// libFuzzer's driver entry point (compiler-rt FuzzerInterface.h).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: FuzzDriver.Entry) -> Int32
#endif
