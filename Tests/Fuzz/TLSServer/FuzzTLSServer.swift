import DomicileFuzzSupport
import DomicileNet

// Fuzzes the server's TLS framing (Tests/Fuzz/run tls): see TLSFuzzing.
@main
enum FuzzTLSServer {
    static func main() throws {
        try FuzzDriver.main(name: "TLS server framing", entry: fuzzTLSServer) { TLSFuzzing.check($0) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzTLSServer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    TLSFuzzing.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
