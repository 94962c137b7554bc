import DomicileCrypto
import DomicileModel

/// What the region channel's decoders are fuzzed for (RegionChannelFuzzTests
/// replays Tests/Fuzz/corpus/region-channel and mutations of it): on any
/// input a handshake step, a sealed frame or a frame's content is refused
/// with a `ChannelRefusal` or accepted, never a trap; a handshake only opens
/// with the peer it expected; whatever frame content decodes re-encodes to
/// the same bytes. Input: `scenario(1) · bytes`, scenario modulo 4:
/// 0 a hello to an acceptor, 1 a welcome to an initiator, 2 a proof after a
/// genuine hello, 3 a frame on an open connection.
enum ChannelFuzzing {
    static func check(_ input: [UInt8]) {
        guard let scenario = input.first else { return }
        let bytes = Array(input.dropFirst())
        let fixture = Fixture()
        switch scenario % 4 {
        case 0:
            var acceptor = ChannelHandshake.accept(fixture.acceptor)
            if case .open = try? acceptor.receive(bytes, roster: fixture.roster, fresh: { _ in true }, nonce: { Fixture.nonceA }) {
                preconditionFailure("a hello alone opened a connection")
            }
        case 1:
            var (initiator, _) = ChannelHandshake.initiate(fixture.initiator, to: Fixture.acceptorName, nonce: Fixture.nonceI)
            if case .open(let session, _) = try? initiator.receive(bytes, roster: fixture.roster, fresh: { _ in true },
                                                                    nonce: { Fixture.nonceI }) {
                precondition(session.peer == Fixture.acceptorName, "opened with a peer it did not dial")
            }
        case 2:
            var acceptor = fixture.acceptorAfterHello()
            if case .open(let session, _) = try? acceptor.receive(bytes, roster: fixture.roster, fresh: { _ in true },
                                                                  nonce: { Fixture.nonceA }) {
                precondition(session.peer == Fixture.initiatorName, "opened with a peer that did not say hello")
            }
        default:
            var session = fixture.openSession()
            if let plaintext = try? session.open(bytes), let frame = try? ChannelFrame(decoding: plaintext) {
                precondition(frame.encoded == plaintext, "frame decode → encode changed the bytes")
            }
            if let frame = try? ChannelFrame(decoding: bytes) {
                precondition(frame.encoded == bytes, "frame decode → encode changed the bytes")
            }
        }
    }

    /// Two nodes of region `eu` with fixed keys and nonces, so the corpus's
    /// valid messages stay valid.
    struct Fixture {
        static let initiatorName = try! NodeName("eu-1")
        static let acceptorName = try! NodeName("eu-2")
        static let nonceI = [UInt8](repeating: 0x11, count: ChannelHandshake.nonceByteCount)
        static let nonceA = [UInt8](repeating: 0x22, count: ChannelHandshake.nonceByteCount)
        static let region = try! RegionID("eu")
        static let keys = KeySet([try! AESGCMKey(version: 1, secret: SecretBytes([UInt8](repeating: 0x5A, count: 32)))])
        static let initiatorKey = try! Ed25519PrivateKey(seed: [UInt8](repeating: 1, count: 32))
        static let acceptorKey = try! Ed25519PrivateKey(seed: [UInt8](repeating: 2, count: 32))

        let initiator = ChannelHandshake.Identity(region: region, name: initiatorName, signing: initiatorKey, regionKeys: keys)
        let acceptor = ChannelHandshake.Identity(region: region, name: acceptorName, signing: acceptorKey, regionKeys: keys)
        let roster = NodeRoster([initiatorName: [initiatorKey.publicKey], acceptorName: [acceptorKey.publicKey]])

        /// The genuine hello, welcome and proof, in order.
        func genuineHandshake() -> (hello: [UInt8], welcome: [UInt8], proof: [UInt8]) {
            var (initiating, hello) = ChannelHandshake.initiate(initiator, to: Self.acceptorName, nonce: Self.nonceI)
            var accepting = ChannelHandshake.accept(acceptor)
            guard case .send(let welcome)? = try? accepting.receive(hello, roster: roster, fresh: { _ in true }, nonce: { Self.nonceA }),
                  case .open(_, let proof?)? = try? initiating.receive(welcome, roster: roster, fresh: { _ in true },
                                                                       nonce: { Self.nonceI }) else {
                preconditionFailure("the fixture's handshake does not complete")
            }
            return (hello, welcome, proof)
        }

        func acceptorAfterHello() -> ChannelHandshake {
            var accepting = ChannelHandshake.accept(acceptor)
            _ = try? accepting.receive(genuineHandshake().hello, roster: roster, fresh: { _ in true }, nonce: { Self.nonceA })
            return accepting
        }

        /// The acceptor's side of the fixture's connection, just opened.
        func openSession() -> ChannelSession {
            var accepting = acceptorAfterHello()
            guard case .open(let session, _)? = try? accepting.receive(genuineHandshake().proof, roster: roster, fresh: { _ in true },
                                                                       nonce: { Self.nonceA }) else {
                preconditionFailure("the fixture's proof does not open")
            }
            return session
        }

        /// The initiator's side of the same connection (to seal valid frames).
        func initiatorSession() -> ChannelSession {
            var (initiating, _) = ChannelHandshake.initiate(initiator, to: Self.acceptorName, nonce: Self.nonceI)
            guard case .open(let session, _)? = try? initiating.receive(genuineHandshake().welcome, roster: roster, fresh: { _ in true },
                                                                        nonce: { Self.nonceI }) else {
                preconditionFailure("the fixture's welcome does not open")
            }
            return session
        }
    }
}
