import DomicileCrypto
import DomicileModel

/// The region channel's handshake (docs/FORMATS.md, "Region channel"), as a
/// value that does no I/O: frames in, frames to send and, at the end, an
/// open `ChannelSession` out.
///
///     initiator → acceptor  hello    kind=1 · version · keyVersion(4) · region · from · to · nonce(32)
///     acceptor → initiator  welcome  kind=2 · version · from · nonce(32) · signature(64)
///     initiator → acceptor  proof    kind=3 · version · signature(64)
///
/// Strings are u8-length-prefixed UTF-8. Each signature is the sender's
/// Ed25519 signature over the transcript
/// `label · role(1) · keyVersion(4) · region · initiator · acceptor · nonceI · nonceA`,
/// the role byte (2 in a welcome, 3 in a proof) keeping one side's signature
/// from being reflected as the other's. The session key is
/// HMAC-SHA256(region gossip key of `keyVersion`, `"key" · transcript without role`):
/// fresh per connection, and only a holder of the region key can derive it.
struct ChannelHandshake {
    static let version: UInt8 = 1
    static let label = Array("domicile-region-channel/1".utf8)
    static let nonceByteCount = 32

    enum Kind: UInt8 {
        case hello = 1, welcome = 2, proof = 3
    }

    /// What the local node brings to every handshake.
    struct Identity {
        let region: RegionID
        let name: NodeName
        let signing: Ed25519PrivateKey
        let regionKeys: KeySet
    }

    enum Step {
        /// Send this frame and wait for the next.
        case send([UInt8])
        /// The connection is open; send `frame` first when there is one.
        case open(ChannelSession, frame: [UInt8]?)
    }

    private enum Phase {
        case awaitingWelcome(peer: NodeName, nonce: [UInt8], keyVersion: UInt32)
        case awaitingHello
        case awaitingProof(peer: NodeName, initiatorNonce: [UInt8], nonce: [UInt8], keyVersion: UInt32)
        case done
    }

    private let identity: Identity
    private var phase: Phase

    /// The dialing side: `hello` is its first frame.
    static func initiate(_ identity: Identity, to peer: NodeName, nonce: [UInt8]) -> (ChannelHandshake, hello: [UInt8]) {
        precondition(nonce.count == nonceByteCount, "handshake nonces are 32 bytes")
        let keyVersion = identity.regionKeys.primary.version
        var writer = BinaryWriter(capacity: 200)
        writer.write(Kind.hello.rawValue)
        writer.write(version)
        writer.write(keyVersion)
        writer.write8(string: identity.region.rawValue)
        writer.write8(string: identity.name.rawValue)
        writer.write8(string: peer.rawValue)
        writer.write(raw: nonce)
        return (ChannelHandshake(identity: identity, phase: .awaitingWelcome(peer: peer, nonce: nonce, keyVersion: keyVersion)),
                writer.bytes)
    }

    /// The accepting side, waiting for a hello.
    static func accept(_ identity: Identity) -> ChannelHandshake {
        ChannelHandshake(identity: identity, phase: .awaitingHello)
    }

    /// The peer's next handshake frame. `roster` vouches for names and keys;
    /// `fresh` says whether an initiator's nonce is new (the acceptor keeps
    /// the ones it saw); `nonce` draws this side's nonce.
    mutating func receive(_ frame: [UInt8], roster: NodeRoster, fresh: ([UInt8]) -> Bool,
                          nonce: () -> [UInt8]) throws(ChannelRefusal) -> Step {
        var reader = BinaryReader(frame, what: "region channel handshake")
        switch phase {
        case .done:
            preconditionFailure("a finished handshake received a frame")
        case .awaitingHello:
            let hello = try Self.parse { () throws(ModelError) in
                try Self.expect(.hello, &reader)
                return (keyVersion: try reader.readUInt32(), region: try reader.read8String(), from: try reader.read8String(),
                        to: try reader.read8String(), nonce: try reader.readBytes(Self.nonceByteCount))
            }
            guard reader.isAtEnd, let from = try? NodeName(hello.from), let to = try? NodeName(hello.to) else {
                throw .malformedHandshake
            }
            guard hello.region == identity.region.rawValue else { throw .wrongRegion }
            guard to == identity.name else { throw .wrongNode }
            guard roster.knows(from) else { throw .unknownNode }
            guard identity.regionKeys.key(version: hello.keyVersion) != nil else { throw .unknownKey }
            guard fresh(hello.nonce) else { throw .replayedNonce }
            let mine = nonce()
            let signature = identity.signing.signature(for: transcript(role: .welcome, keyVersion: hello.keyVersion,
                                                                        initiator: from, acceptor: identity.name,
                                                                        initiatorNonce: hello.nonce, acceptorNonce: mine))
            var writer = BinaryWriter(capacity: 200)
            writer.write(Kind.welcome.rawValue)
            writer.write(Self.version)
            writer.write8(string: identity.name.rawValue)
            writer.write(raw: mine)
            writer.write(raw: signature)
            phase = .awaitingProof(peer: from, initiatorNonce: hello.nonce, nonce: mine, keyVersion: hello.keyVersion)
            return .send(writer.bytes)
        case .awaitingWelcome(let peer, let myNonce, let keyVersion):
            let welcome = try Self.parse { () throws(ModelError) in
                try Self.expect(.welcome, &reader)
                return (from: try reader.read8String(), nonce: try reader.readBytes(Self.nonceByteCount),
                        signature: try reader.readBytes(Ed25519PrivateKey.signatureByteCount))
            }
            guard reader.isAtEnd else { throw .malformedHandshake }
            guard welcome.from == peer.rawValue else { throw .wrongNode }
            guard welcome.nonce != myNonce else { throw .replayedNonce }
            let acceptorTranscript = transcript(role: .welcome, keyVersion: keyVersion, initiator: identity.name, acceptor: peer,
                                                initiatorNonce: myNonce, acceptorNonce: welcome.nonce)
            guard roster.knows(peer) else { throw .unknownNode }
            guard roster.verifies(welcome.signature, by: peer, over: acceptorTranscript) else { throw .badSignature }
            let signature = identity.signing.signature(for: transcript(role: .proof, keyVersion: keyVersion, initiator: identity.name,
                                                                        acceptor: peer, initiatorNonce: myNonce,
                                                                        acceptorNonce: welcome.nonce))
            var writer = BinaryWriter(capacity: 80)
            writer.write(Kind.proof.rawValue)
            writer.write(Self.version)
            writer.write(raw: signature)
            phase = .done
            let key = try sessionKey(keyVersion: keyVersion, initiator: identity.name, acceptor: peer, initiatorNonce: myNonce,
                                     acceptorNonce: welcome.nonce)
            return .open(ChannelSession(key: key, me: identity.name, peer: peer, initiator: true), frame: writer.bytes)
        case .awaitingProof(let peer, let initiatorNonce, let myNonce, let keyVersion):
            let signature = try Self.parse { () throws(ModelError) in
                try Self.expect(.proof, &reader)
                return try reader.readBytes(Ed25519PrivateKey.signatureByteCount)
            }
            guard reader.isAtEnd else { throw .malformedHandshake }
            let initiatorTranscript = transcript(role: .proof, keyVersion: keyVersion, initiator: peer, acceptor: identity.name,
                                                 initiatorNonce: initiatorNonce, acceptorNonce: myNonce)
            guard roster.verifies(signature, by: peer, over: initiatorTranscript) else { throw .badSignature }
            phase = .done
            let key = try sessionKey(keyVersion: keyVersion, initiator: peer, acceptor: identity.name, initiatorNonce: initiatorNonce,
                                     acceptorNonce: myNonce)
            return .open(ChannelSession(key: key, me: identity.name, peer: peer, initiator: false), frame: nil)
        }
    }

    private func transcript(role: Kind?, keyVersion: UInt32, initiator: NodeName, acceptor: NodeName,
                            initiatorNonce: [UInt8], acceptorNonce: [UInt8]) -> [UInt8] {
        var writer = BinaryWriter(capacity: 220)
        writer.write(raw: Self.label)
        if let role { writer.write(role.rawValue) }
        writer.write(keyVersion)
        writer.write8(string: identity.region.rawValue)
        writer.write8(string: initiator.rawValue)
        writer.write8(string: acceptor.rawValue)
        writer.write(raw: initiatorNonce)
        writer.write(raw: acceptorNonce)
        return writer.bytes
    }

    private func sessionKey(keyVersion: UInt32, initiator: NodeName, acceptor: NodeName, initiatorNonce: [UInt8],
                            acceptorNonce: [UInt8]) throws(ChannelRefusal) -> SecretBytes {
        guard let regionKey = identity.regionKeys.key(version: keyVersion),
              let mac = try? regionKey.secret.withUnsafeBytes({ try HMACKey(key: Array($0)) }) else { throw .unknownKey }
        let context = Array("key".utf8) + transcript(role: nil, keyVersion: keyVersion, initiator: initiator, acceptor: acceptor,
                                                     initiatorNonce: initiatorNonce, acceptorNonce: acceptorNonce)
        return SecretBytes(mac.authenticate(context))
    }

    private static func expect(_ kind: Kind, _ reader: inout BinaryReader) throws(ModelError) {
        guard try reader.readUInt8() == kind.rawValue, try reader.readUInt8() == version else {
            throw .invalidEncoding(what: "region channel handshake")
        }
    }

    private static func parse<T>(_ body: () throws(ModelError) -> T) throws(ChannelRefusal) -> T {
        do {
            return try body()
        } catch {
            throw .malformedHandshake
        }
    }
}
