@testable import DomicileNode
import DomicileModel
import Foundation
import XCTest

/// The region channel's handshake and frame decoders against the seed
/// corpus (Tests/Fuzz/corpus/region-channel) and seeded mutations of it:
/// every input is refused with a typed reason or accepted, never a trap
/// (`ChannelFuzzing.check` stops the process on a violated invariant).
final class RegionChannelFuzzTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fuzz/corpus/region-channel").standardized

    /// The fixture's genuine messages, as the corpus holds them
    /// (`scenario · bytes`). DOMICILE_WRITE_CORPUS=1 rewrites the files.
    static func genuineInputs() -> [String: [UInt8]] {
        let fixture = ChannelFuzzing.Fixture()
        let (hello, welcome, proof) = fixture.genuineHandshake()
        var sender = fixture.initiatorSession()
        return [
            "hello.bin": [0] + hello,
            "welcome.bin": [1] + welcome,
            "proof.bin": [2] + proof,
            "frame-message.bin": [3] + sender.seal(ChannelFrame.message(Array("raft append".utf8)).encoded),
            "frame-request-plain.bin": [3] + ChannelFrame.request(id: 7, [1, 2, 3]).encoded,
            "frame-reply-plain.bin": [3] + ChannelFrame.reply(id: 7, []).encoded,
            "garbage-http.bin": [0] + Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
            "hello-wrong-version.bin": [0, hello[0], 2] + hello.dropFirst(2),
        ]
    }

    func test_seedCorpus_holdsTheGenuineHandshake_andPassesTheCheck() throws {
        let genuine = Self.genuineInputs()
        if ProcessInfo.processInfo.environment["DOMICILE_WRITE_CORPUS"] == "1" {
            for (file, bytes) in genuine { try Data(bytes).write(to: Self.corpus.appendingPathComponent(file)) }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path)
        XCTAssertGreaterThanOrEqual(files.count, genuine.count)
        for file in files {
            let bytes = Array(try Data(contentsOf: Self.corpus.appendingPathComponent(file)))
            if let expected = genuine[file] { XCTAssertEqual(bytes, expected, "\(file) is the fixture's current message") }
            ChannelFuzzing.check(bytes)
        }
        // The genuine messages are accepted, so the mutations below start from valid inputs.
        var session = ChannelFuzzing.Fixture().openSession()
        XCTAssertEqual(try ChannelFrame(decoding: session.open(Array(genuine["frame-message.bin"]!.dropFirst()))),
                       .message(Array("raft append".utf8)))
    }

    func test_mutatedInputs_areRefusedOrAccepted_neverATrap() throws {
        let seeds = Array(Self.genuineInputs().values)
        var random = SeededRandom(seed: 14)
        for _ in 0..<5_000 {
            var input = seeds[Int.random(in: 0..<seeds.count, using: &random)]
            for _ in 0...Int.random(in: 0...3, using: &random) {
                let position = Int.random(in: 1..<max(2, input.count), using: &random)
                switch Int.random(in: 0..<5, using: &random) {
                case 0 where position < input.count: input[position] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
                case 1: input = Array(input.prefix(position))
                case 2: input.insert(UInt8.random(in: 0...255, using: &random), at: min(position, input.count))
                case 3 where position < input.count: input[position] = [0, 0xFF, 0x7F, 0x80][Int.random(in: 0..<4, using: &random)]
                default: input += (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                }
            }
            ChannelFuzzing.check(input)
        }
    }

    func test_mutatedGenuineMessages_neverOpen() throws {
        let fixture = ChannelFuzzing.Fixture()
        let (_, welcome, proof) = fixture.genuineHandshake()
        for index in 0..<welcome.count {
            var altered = welcome
            altered[index] ^= 0x01
            var (initiator, _) = ChannelHandshake.initiate(fixture.initiator, to: ChannelFuzzing.Fixture.acceptorName,
                                                           nonce: ChannelFuzzing.Fixture.nonceI)
            XCTAssertThrowsError(try initiator.receive(altered, roster: fixture.roster, fresh: { _ in true }, nonce: { [] }),
                                 "a welcome with byte \(index) flipped is refused")
        }
        for index in 0..<proof.count {
            var altered = proof
            altered[index] ^= 0x01
            var acceptor = fixture.acceptorAfterHello()
            XCTAssertThrowsError(try acceptor.receive(altered, roster: fixture.roster, fresh: { _ in true }, nonce: { [] }),
                                 "a proof with byte \(index) flipped is refused")
        }
    }
}
