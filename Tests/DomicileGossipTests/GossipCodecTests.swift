@testable import DomicileGossip
import DomicileCrypto
import DomicileModel
import XCTest

final class GossipCodecTests: XCTestCase {
    let messages: [GossipMessage] = [
        .ping(seq: 1, target: node("b"), source: node("a")),
        .indirectPing(seq: 2, target: node("c"), targetAddress: "10.0.0.3:7300", requester: node("a"), requesterAddress: "10.0.0.1:7300"),
        .ack(seq: 3, source: node("c")),
        .nack(seq: 4, source: node("d")),
        .alive(incarnation: 9, identity: identity("eu-1", boot: 0xDEAD_BEEF, address: "[::1]:7300")),
        .suspect(incarnation: 10, name: node("eu-2"), accuser: node("eu-1")),
        .dead(incarnation: 11, name: node("eu-3"), accuser: node("eu-3")),
    ]

    func test_codec_roundTripsEveryMessageType_andKnowsItsSizes() throws {
        let encoded = GossipCodec.encode(messages)
        let decoded = try GossipCodec.decode(encoded)
        XCTAssertEqual(decoded.messages, messages)
        XCTAssertEqual(decoded.skipped, 0)
        XCTAssertEqual(encoded.count, 1 + messages.reduce(0) { $0 + GossipCodec.encodedSize($1) })
        XCTAssertEqual(messages.map(\.kind.rawValue), [1, 2, 3, 4, 5, 6, 7], "wire numbers are append-only")
    }

    func test_codec_skipsUnknownTypes_andRejectsMalformedInput() throws {
        var bytes = GossipCodec.encode([messages[2]])
        bytes[0] = 2
        bytes += [99, 0, 3, 1, 2, 3]  // a type from the future
        let decoded = try GossipCodec.decode(bytes)
        XCTAssertEqual(decoded.messages, [messages[2]])
        XCTAssertEqual(decoded.skipped, 1)

        for bad in [[], [1], [1, 3, 0, 9], [1, 3, 0, 2, 0, 0], GossipCodec.encode([messages[0]]) + [0]] as [[UInt8]] {
            XCTAssertThrowsError(try GossipCodec.decode(bad))
        }
        var badName = GossipCodec.encode([.ack(seq: 1, source: node("ab"))])
        badName[badName.count - 1] = UInt8(ascii: "B")  // not a valid node name
        XCTAssertThrowsError(try GossipCodec.decode(badName))
    }

    func test_codec_neverCrashesOnRandomBytes() {
        var generator = SeededRandom(seed: 2026)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<80, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? GossipCodec.decode(bytes)
            _ = try? GossipCodec.decodeState(bytes, membersMax: 100)
        }
        // And on every truncation and single-byte change of a valid packet.
        let valid = GossipCodec.encode(messages)
        for cut in 0..<valid.count { _ = try? GossipCodec.decode(Array(valid.prefix(cut))) }
        for index in valid.indices {
            var changed = valid
            changed[index] ^= 0xFF
            _ = try? GossipCodec.decode(changed)
        }
    }

    func test_state_roundTrips_andIsBounded() throws {
        let states = [MemberState(identity: identity("a"), incarnation: 3, status: .alive),
                      MemberState(identity: identity("b", region: "us"), incarnation: 7, status: .left)]
        XCTAssertEqual(try GossipCodec.decodeState(GossipCodec.encodeState(states), membersMax: 10), states)
        XCTAssertThrowsError(try GossipCodec.decodeState(GossipCodec.encodeState(states), membersMax: 1))
    }

    func test_packets_areEncrypted_boundToTheirPool_andOpenedByAnyInstalledKey() throws {
        let old = try AESGCMKey(version: 1, secret: SecretBytes(randomCount: 32))
        let new = try AESGCMKey(version: 2, secret: SecretBytes(randomCount: 32))
        let plaintext = GossipCodec.encode(messages)
        let packet = GossipCodec.seal(plaintext, pool: .region, keys: KeySet([old]))
        XCTAssertEqual(Array(packet.prefix(2)), [1, Pool.region.rawValue])
        XCTAssertFalse(packet.indices.dropLast(8).contains { Array(packet[$0..<min($0 + 4, packet.count)]) == Array("eu-1".utf8) },
                       "no plaintext on the wire")
        let opened = try GossipCodec.open(packet, keys: KeySet([new, old]))
        XCTAssertEqual(opened.pool, .region)
        XCTAssertEqual(opened.plaintext, plaintext)

        XCTAssertThrowsError(try GossipCodec.open(packet, keys: KeySet([new]))) { XCTAssertEqual($0 as? GossipCodec.Failure, .undecryptable) }
        var relabelled = packet
        relabelled[1] = Pool.federation.rawValue
        XCTAssertThrowsError(try GossipCodec.open(relabelled, keys: KeySet([old])), "the pool byte is authenticated")
        var tampered = packet
        tampered[20] ^= 1
        XCTAssertThrowsError(try GossipCodec.open(tampered, keys: KeySet([old])))
        XCTAssertThrowsError(try GossipCodec.open([1, 1, 2], keys: KeySet([old]))) { XCTAssertEqual($0 as? GossipCodec.Failure, .tooShort) }
    }
}

final class GossipIncarnationBoundTests: XCTestCase {
    private let me = MemberIdentity(name: try! NodeName("a"), region: try! RegionID("eu"), bootID: 1, gossipAddress: "a:1", httpAddress: "a:2")

    /// A peer's `alive`, `suspect` or `dead` about us at `UInt64.max` used to
    /// trap the refutation (`max(ours, theirs) + 1`); the codec refuses it.
    func test_incarnationAboveTheBound_failsTheWholePacketAndState() {
        let peer = MemberIdentity(name: try! NodeName("b"), region: try! RegionID("eu"), bootID: 2, gossipAddress: "b:1", httpAddress: "b:2")
        for incarnation in [GossipCodec.incarnationMax + 1, UInt64.max] {
            for message in [GossipMessage.alive(incarnation: incarnation, identity: me),
                            .suspect(incarnation: incarnation, name: me.name, accuser: peer.name),
                            .dead(incarnation: incarnation, name: peer.name, accuser: peer.name)] {
                XCTAssertThrowsError(try GossipCodec.decode(GossipCodec.encode([.ack(seq: 1, source: peer.name), message])))
            }
            let state = GossipCodec.encodeState([MemberState(identity: peer, incarnation: incarnation, status: .alive)])
            XCTAssertThrowsError(try GossipCodec.decodeState(state, membersMax: 8))
        }
        let atBound = GossipMessage.suspect(incarnation: GossipCodec.incarnationMax, name: me.name, accuser: peer.name)
        XCTAssertEqual(try GossipCodec.decode(GossipCodec.encode([atBound])).messages, [atBound])
    }

    /// At the bound a refutation saturates instead of trapping.
    func test_refutationAtTheBound_saturates() {
        var instance = MembershipInstance(me: me, pool: .region, settings: .loopback, seeds: [], randomSeed: 1, now: 0)
        let accuser = try! NodeName("b")
        _ = instance.receive([.suspect(incarnation: GossipCodec.incarnationMax - 1, name: me.name, accuser: accuser)], from: "b:1", now: 1)
        XCTAssertEqual(instance.incarnation, GossipCodec.incarnationMax)
        for message in [GossipMessage.suspect(incarnation: GossipCodec.incarnationMax, name: me.name, accuser: accuser),
                        .dead(incarnation: .max, name: me.name, accuser: accuser),
                        .alive(incarnation: .max, identity: MemberIdentity(name: me.name, region: me.region, bootID: 9,
                                                                           gossipAddress: "old:1", httpAddress: "old:2"))] {
            _ = instance.receive([message], from: "b:1", now: 2)
            XCTAssertEqual(instance.incarnation, GossipCodec.incarnationMax)
        }
    }
}

final class GossipFuzzCorpusTests: XCTestCase {
    /// The gossip fuzzer's seed corpus passes its check in the ordinary run too.
    func test_gossipSeedCorpus_passesTheFuzzCheck() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fuzz/corpus/gossip").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path)
        XCTAssertGreaterThan(files.count, 8)
        var decodedPackets = 0
        for file in files {
            let bytes = Array(try Data(contentsOf: corpus.appendingPathComponent(file)))
            if file.hasPrefix("packet"), (try? GossipCodec.decode(bytes)) != nil { decodedPackets += 1 }
            bytes.withUnsafeBytes { GossipFuzzing.check($0) }
        }
        XCTAssertGreaterThan(decodedPackets, 5, "the corpus holds valid packets, not only noise")
    }
}
