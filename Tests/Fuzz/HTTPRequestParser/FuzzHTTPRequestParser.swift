import DomicileFuzzSupport
import DomicileNet

// Fuzzes the HTTP request parser (Tests/Fuzz/run http): see HTTPParserFuzzing.
@main
enum FuzzHTTPRequestParser {
    static func main() throws {
        try FuzzDriver.main(name: "HTTP request parser", entry: fuzzHTTPRequestParser) { HTTPParserFuzzing.check($0) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzHTTPRequestParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    HTTPParserFuzzing.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
