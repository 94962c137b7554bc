import DomicileCrypto
import DomicileModel

/// The sealing state of one open region-channel connection (docs/FORMATS.md,
/// "Region channel"): a key of its own, derived from the region key and both
/// handshake nonces, and one counter per direction. A frame is
/// `ciphertext · tag(16)` under AES-256-GCM with nonce
/// `direction(4) · counter(8)` and associated data
/// `sender · receiver · direction(1) · counter(8)`; the counter is not sent,
/// so a frame replayed, dropped or reordered inside the connection fails to
/// open, and one from another connection fails under that connection's key.
struct ChannelSession {
    enum Direction: UInt8 {
        case initiatorToAcceptor = 0
        case acceptorToInitiator = 1
    }

    let me: NodeName
    let peer: NodeName
    /// The connection's key, set up once (shared by copies of the value,
    /// all on the channel's loop thread).
    private let cipher: AESGCMStream
    private let sending: Direction
    private let sendingPrefix: [UInt8]
    private let receivingPrefix: [UInt8]
    private var sent: UInt64 = 0
    private var received: UInt64 = 0

    init(key: SecretBytes, me: NodeName, peer: NodeName, initiator: Bool) {
        do {
            cipher = try AESGCMStream(key: key)
        } catch {
            preconditionFailure("a derived 32-byte key is a valid AES-256 key: \(error)")
        }
        self.me = me
        self.peer = peer
        sending = initiator ? .initiatorToAcceptor : .acceptorToInitiator
        let receiving: Direction = initiator ? .acceptorToInitiator : .initiatorToAcceptor
        sendingPrefix = Self.prefix(sender: me, receiver: peer, receiving: sending)
        receivingPrefix = Self.prefix(sender: peer, receiver: me, receiving: receiving)
    }

    private static func prefix(sender: NodeName, receiver: NodeName, receiving direction: Direction) -> [UInt8] {
        var writer = BinaryWriter(capacity: 140)
        writer.write8(string: sender.rawValue)
        writer.write8(string: receiver.rawValue)
        writer.write(direction.rawValue)
        return writer.bytes
    }

    /// Seals the next frame this side sends.
    mutating func seal(_ plaintext: [UInt8]) -> [UInt8] {
        defer { sent += 1 }
        let (nonce, ad) = Self.nonceAndAD(prefix: sendingPrefix, counter: sent)
        do {
            return try cipher.seal(nonce: nonce, plaintext: plaintext, associatedData: ad)
        } catch {
            preconditionFailure("AES-GCM sealing failed with a valid key: \(error)")
        }
    }

    /// Opens the next frame from the peer; throws when it was not sealed
    /// under this connection's key as the peer's next frame.
    mutating func open(_ frame: [UInt8]) throws(ChannelRefusal) -> [UInt8] {
        let (nonce, ad) = Self.nonceAndAD(prefix: receivingPrefix, counter: received)
        guard let plaintext = try? cipher.open(nonce: nonce, box: frame, associatedData: ad) else { throw .undecryptable }
        received += 1
        return plaintext
    }

    private static func nonceAndAD(prefix: [UInt8], counter: UInt64) -> (nonce: [UInt8], ad: [UInt8]) {
        let counterBytes = withUnsafeBytes(of: counter.bigEndian) { Array($0) }
        let direction = prefix[prefix.count - 1]
        return ([0, 0, 0, direction] + counterBytes, prefix + counterBytes)
    }
}
