import DomicileModel

/// The plaintext of a sealed region-channel frame:
/// `kind(1) · id(8, big-endian) · payload`. Kinds are append-only.
enum ChannelFrame: Equatable {
    /// Fire-and-forget (Raft messages); id 0.
    case message([UInt8])
    /// Wants a `reply` with the same id on the same connection.
    case request(id: UInt64, [UInt8])
    case reply(id: UInt64, [UInt8])

    static let headerByteCount = 9

    var encoded: [UInt8] {
        let (kind, id, payload): (UInt8, UInt64, [UInt8])
        switch self {
        case .message(let bytes): (kind, id, payload) = (1, 0, bytes)
        case .request(let requestID, let bytes): (kind, id, payload) = (2, requestID, bytes)
        case .reply(let requestID, let bytes): (kind, id, payload) = (3, requestID, bytes)
        }
        var writer = BinaryWriter(capacity: Self.headerByteCount + payload.count)
        writer.write(kind)
        writer.write(id)
        writer.write(raw: payload)
        return writer.bytes
    }

    init(decoding bytes: [UInt8]) throws(ChannelRefusal) {
        guard bytes.count >= Self.headerByteCount else { throw .malformedFrame }
        let id = bytes[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let payload = Array(bytes[9...])
        switch bytes[0] {
        case 1 where id == 0: self = .message(payload)
        case 2: self = .request(id: id, payload)
        case 3: self = .reply(id: id, payload)
        default: throw .malformedFrame
        }
    }
}
