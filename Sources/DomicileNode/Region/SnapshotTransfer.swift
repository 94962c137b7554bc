import DomicileModel
import DomicileStorage

/// The region channel's requests that move a snapshot from the leader to a
/// follower too far behind for the log (docs/FORMATS.md, "Snapshot
/// transfer"): `open` asks the leader for a backup of its applied state at
/// or after an index and answers its id, size and SHA-256; `chunk` asks for
/// the bytes at an offset, at most `SnapshotChunkReader`'s chunk size.
enum SnapshotTransfer {
    /// The first byte of a channel request: what it asks (`ForwardedCall`
    /// uses 1).
    static let requestKind: UInt8 = 2

    enum Request: Equatable {
        case open(atLeast: UInt64)
        case chunk(id: UInt64, offset: UInt64)
    }

    struct Offer: Equatable {
        /// The applied index of the backup: its name among the leader's snapshots.
        let id: UInt64
        let byteCount: UInt64
        let digest: [UInt8]
    }

    struct Malformed: Error {}

    static func encode(_ request: Request) -> [UInt8] {
        var writer = BinaryWriter(capacity: 18)
        writer.write(requestKind)
        switch request {
        case .open(let index):
            writer.write(UInt8(1))
            writer.write(index)
        case .chunk(let id, let offset):
            writer.write(UInt8(2))
            writer.write(id)
            writer.write(offset)
        }
        return writer.bytes
    }

    static func decodeRequest(_ bytes: [UInt8]) throws(Malformed) -> Request {
        var reader = BinaryReader(bytes, what: "snapshot request")
        do {
            guard try reader.readUInt8() == requestKind else { throw Malformed() }
            let request: Request
            switch try reader.readUInt8() {
            case 1: request = .open(atLeast: try reader.readUInt64())
            case 2: request = .chunk(id: try reader.readUInt64(), offset: try reader.readUInt64())
            default: throw Malformed()
            }
            guard reader.isAtEnd else { throw Malformed() }
            return request
        } catch {
            throw Malformed()
        }
    }

    /// An empty answer refuses (no snapshot, or not that one any more).
    static func encode(_ offer: Offer) -> [UInt8] {
        var writer = BinaryWriter(capacity: 48)
        writer.write(offer.id)
        writer.write(offer.byteCount)
        writer.write(raw: offer.digest)
        return writer.bytes
    }

    static func decodeOffer(_ bytes: [UInt8]) throws(Malformed) -> Offer {
        var reader = BinaryReader(bytes, what: "snapshot offer")
        do {
            let offer = Offer(id: try reader.readUInt64(), byteCount: try reader.readUInt64(), digest: try reader.readBytes(32))
            guard reader.isAtEnd, offer.byteCount > 0 else { throw Malformed() }
            return offer
        } catch {
            throw Malformed()
        }
    }
}
