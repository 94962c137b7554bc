import DomicileFuzzSupport
import DomicileGossip

// Fuzzes the gossip packet and push-pull decoders (Tests/Fuzz/run gossip): see GossipFuzzing.
@main
enum FuzzGossipPacket {
    static func main() throws {
        try FuzzDriver.main(name: "gossip packet", entry: fuzzGossipPacket) { GossipFuzzing.check($0) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzGossipPacket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    GossipFuzzing.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
