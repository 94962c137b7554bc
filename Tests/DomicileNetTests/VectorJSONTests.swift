@testable import DomicileNet
import DomicileModel
import Foundation
import XCTest

/// The fast path for vector bodies reads exactly what `JSONDecoder` reads,
/// and leaves everything else to it (nil).
final class VectorJSONTests: XCTestCase {
    private struct VectorBody: Decodable, Equatable { let vector: [Double] }
    private struct BatchEntry: Decodable, Equatable { let pid: String; let vector: [Double] }
    private struct BatchBody: Decodable, Equatable { let vectors: [BatchEntry] }

    func numbers(_ text: String) -> [Double]? { VectorJSON.numbers(in: Array(text.utf8), key: "vector") }

    func entries(_ text: String) -> [VectorJSON.Entry]? {
        VectorJSON.entries(in: Array(text.utf8), list: "vectors", text: "pid", numbers: "vector")
    }

    func test_readsTheVectorShapes_withWhitespace_andMembersInEitherOrder() {
        XCTAssertEqual(numbers(#"{"vector":[1,-0.5,2.5e-3,0,-0,1E+2]}"#), [1, -0.5, 0.0025, 0, -0.0, 100])
        XCTAssertEqual(numbers(" {\n\t\"vector\" :\r [ 1 , 2 ] } \n"), [1, 2])
        XCTAssertEqual(numbers(#"{"vector":[]}"#), [])
        XCTAssertEqual(entries(#"{"vectors":[{"pid":"a","vector":[1]},{ "vector" : [2,3] , "pid" : "b c" }]}"#),
                       [.init(text: "a", numbers: [1]), .init(text: "b c", numbers: [2, 3])])
        XCTAssertEqual(entries(#"{"vectors":[]}"#), [])
    }

    func test_leavesEveryOtherBodyToTheDecoder() {
        let vectorBodies = [
            "", "{}", "[]", #"{"vector":[1]"#, #"{"vector":[1]}x"#, #"{"vector":[1],}"#, #"{"vector":[1,]}"#,
            #"{"vector":[1],"vector":[2]}"#, #"{"vector":[1],"k":1}"#, #"{"vector":null}"#, #"{"vector":["1"]}"#,
            #"{"vec\u0074or":[1]}"#, #"{"vector":[01]}"#, #"{"vector":[1.]}"#, #"{"vector":[.5]}"#, #"{"vector":[-]}"#,
            #"{"vector":[+1]}"#, #"{"vector":[NaN]}"#, #"{"vector":[Infinity]}"#, #"{"vector":[1e]}"#, #"{"vector":[1e+]}"#,
            #"{"vector":[0x10]}"#, #"{"vector":[1e400]}"#, #"{"vector":[-1e400]}"#, #"{"vector":[1e-400]}"#,
            #"{"vector":[4.9e-324]}"#, #"{"vector":[\#(String(repeating: "1", count: 64))]}"#, #"{"vector":[1 2]}"#,
            "{\"vector\":[1]}\u{00}", #"{"vector":[[1]]}"#,
            #"{"vector":[0e5]}"#, // valid JSON, which Foundation refuses: left to it

        ]
        for body in vectorBodies { XCTAssertNil(numbers(body), body) }
        let batchBodies = [
            #"{"vectors":[{"pid":"a"}]}"#, #"{"vectors":[{"vector":[1]}]}"#, #"{"vectors":[{"pid":"a","vector":[1],"pid":"b"}]}"#,
            #"{"vectors":[{"pid":"a","vector":[1],"x":1}]}"#, #"{"vectors":[{"pid":"a\"b","vector":[1]}]}"#,
            #"{"vectors":[{"pid":"é","vector":[1]}]}"#, "{\"vectors\":[{\"pid\":\"a\u{01}\",\"vector\":[1]}]}",
            #"{"vectors":[{"pid":1,"vector":[1]}]}"#, #"{"vectors":[{}]}"#, #"{"vectors":[{"pid":"a","vector":[1]},]}"#,
            #"{"vectors":[{"pid":"a","vector":[1]}],"vectors":[]}"#, #"{"vectors":{}}"#,
        ]
        for body in batchBodies { XCTAssertNil(entries(body), body) }
    }

    func test_numbersAreTheDecodersBitForBit() throws {
        var random = SeededRandom(seed: 18)
        var texts: [String] = ["0.1", "0.30000000000000004", "1.7976931348623157e308", "2.2250738585072014e-308", "-123456789012345678901234567890"]
        for _ in 0..<2_000 {
            let value = Double(bitPattern: random.next() & 0x7FEF_FFFF_FFFF_FFFF) * (random.next() & 1 == 0 ? 1 : -1)
            texts.append(value.isNormal ? "\(value)" : "0")
            texts.append(String(Float(Double(random.next() % 2_000_000) / 1_000_000 - 1)))
            texts.append("\(random.next() % 100_000)e-\(random.next() % 300)")
        }
        let body = #"{"vector":[\#(texts.joined(separator: ","))]}"#
        let fast = try XCTUnwrap(numbers(body))
        let decoded = try JSONCoding.decoder.decode(VectorBody.self, from: Data(body.utf8)).vector
        XCTAssertEqual(fast.count, decoded.count)
        for (index, (mine, theirs)) in zip(fast, decoded).enumerated() where mine.bitPattern != theirs.bitPattern {
            XCTFail("\(texts[index]): \(mine) against the decoder's \(theirs)")
        }
    }

    /// Seeded mutations of valid bodies: whatever the fast path reads, the
    /// decoder reads alike (the fuzz target's property, in the ordinary run).
    func test_mutatedBodies_areReadAsTheDecoderReadsThem_orLeftToIt() {
        let seeds = [#"{"vectors":[{"pid":"p_1","vector":[0.5,-1e-3,2]},{"vector":[0,1E+2],"pid":"q"}]}"#,
                     #"{"vector":[0.25,-12.5e-1,3]}"#].map { Array($0.utf8) }
        let alphabet = Array(#"{}[]",:-+.eE0123456789 \pidvectorsx"#.utf8)
        var random = SeededRandom(seed: 7)
        var read = 0
        for round in 0..<20_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0...(random.next() % 3) {
                let at = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes[at] = alphabet[Int(random.next() % UInt64(alphabet.count))]
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: at)
                }
            }
            if let fast = VectorJSON.numbers(in: bytes, key: "vector") {
                read += 1
                XCTAssertEqual(try? JSONCoding.decoder.decode(VectorBody.self, from: Data(bytes)).vector, fast, String(decoding: bytes, as: UTF8.self))
            }
            if let fast = VectorJSON.entries(in: bytes, list: "vectors", text: "pid", numbers: "vector") {
                read += 1
                let decoded = try? JSONCoding.decoder.decode(BatchBody.self, from: Data(bytes))
                XCTAssertEqual(decoded, BatchBody(vectors: fast.map { BatchEntry(pid: $0.text, vector: $0.numbers) }),
                               String(decoding: bytes, as: UTF8.self))
            }
            bytes.withUnsafeBytes { HTTPParserFuzzing.checkVectorJSON(Array($0)) }
        }
        XCTAssertGreaterThan(read, 1_000, "the mutations should leave many bodies readable")
    }
}
