import DomicileModel
import DomicileNet
import Foundation
import XCTest

/// The TLS fuzz target's check (Tests/Fuzz/run tls) over its seed corpus
/// (Tests/Fuzz/corpus/tls) and seeded mutations of it, in the ordinary run:
/// the recorded ClientHellos get as far as waiting for the client's next
/// flight, what is not TLS is refused with a reason, a genuine client's
/// records reach the parser, and forged records never yield plaintext
/// (`TLSFuzzing.check` stops the process on a violated invariant).
final class TLSFuzzingTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fuzz/corpus/tls").standardized

    static func outcome(_ file: String) throws -> String {
        let bytes = Array(try Data(contentsOf: corpus.appendingPathComponent(file)))
        return bytes.withUnsafeBytes { TLSFuzzing.check($0) }
    }

    func test_recordedClientHellos_areAccepted_untilTheStreamEnds() throws {
        // openssl s_client's ClientHellos (TLS 1.3, TLS 1.2 only, SNI and ALPN, split over two records):
        // the server answers and waits for the client's next flight, which never comes.
        for file in ["handshake-clienthello-tls13.bin", "handshake-clienthello-tls12.bin", "handshake-clienthello-sni-alpn.bin",
                     "handshake-clienthello-split-records.bin"] {
            let outcome = try Self.outcome(file)
            XCTAssertTrue(outcome.hasPrefix("refused:") && outcome.lowercased().contains("eof"), "\(file): \(outcome)")
        }
    }

    func test_whatIsNotAClientHello_isRefused_withAReason() throws {
        for file in ["handshake-plaintext-http.bin", "handshake-sslv2-hello.bin", "handshake-record-too-long.bin",
                     "handshake-message-length-overflow.bin", "handshake-alert.bin"] {
            let outcome = try Self.outcome(file)
            XCTAssertTrue(outcome.hasPrefix("refused:") && !outcome.lowercased().contains("eof"), "\(file): \(outcome)")
        }
    }

    func test_aGenuineClientsRecords_reachTheParser_whateverTheirSize() throws {
        XCTAssertEqual(try Self.outcome("records-get.bin"), "requests: GET / 0")
        XCTAssertEqual(try Self.outcome("records-pipelined.bin").components(separatedBy: "GET").count - 1, 2)
        XCTAssertTrue(try Self.outcome("records-chunked.bin").hasPrefix("requests: POST"))
    }

    func test_forgedRecords_neverBecomePlaintext() throws {
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path) where file.hasPrefix("tampered-") {
            let outcome = try Self.outcome(file)
            XCTAssertTrue(outcome.hasPrefix("requests: GET /healthz 0"), "\(file): \(outcome)")
        }
    }

    func test_seededMutationsOfTheCorpus_passTheCheck() throws {
        var random = SeededRandom(seed: 17)
        let seeds = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
            .map { Array(try Data(contentsOf: Self.corpus.appendingPathComponent($0))) }
        XCTAssertGreaterThanOrEqual(seeds.count, 15)
        var refusals = 0
        for _ in 0..<300 {
            var input = seeds.randomElement(using: &random)!
            for _ in 0..<Int.random(in: 1...4, using: &random) where input.count > 1 {
                let index = Int.random(in: 1..<input.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: input[index] = UInt8.random(in: 0...255, using: &random)
                case 1: input.remove(at: index)
                default: input.insert(UInt8.random(in: 0...255, using: &random), at: index)
                }
            }
            if input.withUnsafeBytes({ TLSFuzzing.check($0) }).contains("refused:") { refusals += 1 }
        }
        XCTAssertGreaterThan(refusals, 0, "some mutations were refused")
    }
}
