import DomicileFuzzSupport
import DomicileStorage
import Foundation

// Fuzzes `Database.apply` with changesets (Tests/Fuzz/run changeset): see ChangesetFuzzing.
// `domicile-fuzz-changeset --write-seeds DIR` writes the seed corpus (Tests/Fuzz/corpus/changeset).
@main
enum FuzzChangeset {
    static func main() throws {
        let arguments = CommandLine.arguments
        if arguments.count == 3, arguments[1] == "--write-seeds" {
            for seed in try ChangesetFuzzing.seeds() {
                try Data(seed.bytes).write(to: URL(fileURLWithPath: arguments[2]).appendingPathComponent(seed.name))
            }
            return
        }
        try FuzzDriver.main(name: "changeset", entry: fuzzChangeset) { ChangesetFuzzing.check($0) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzChangeset(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ChangesetFuzzing.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
