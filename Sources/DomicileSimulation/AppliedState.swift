import DomicileConsensus
import DomicileModel

/// The state machine a simulated node applies the region log to — its
/// "database": how far it has applied, and a hash chain over what it
/// applied, so two nodes' states compare in one step. Its snapshot payload
/// is those 16 bytes.
public struct AppliedState: Hashable, Sendable {
    public private(set) var index: UInt64 = 0
    public private(set) var hash: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    public init(payload: [UInt8]) throws {
        guard !payload.isEmpty else { return }
        var reader = BinaryReader(payload, what: "applied state")
        index = try reader.readUInt64()
        hash = try reader.readUInt64()
    }

    public mutating func apply(_ entry: LogEntry) {
        index = entry.index
        hash = Self.mix(hash, entry.index)
        hash = Self.mix(hash, entry.term)
        if case .command(let data) = entry.payload { for byte in data { hash = Self.mix(hash, UInt64(byte)) } }
    }

    public var payload: [UInt8] {
        var writer = BinaryWriter()
        writer.write(index)
        writer.write(hash)
        return writer.bytes
    }

    private static func mix(_ hash: UInt64, _ value: UInt64) -> UInt64 { (hash ^ value) &* 0x0000_0100_0000_01B3 }
}
