import Foundation

/// The property the HTTP request parser, and the response parser that reads
/// what peers answer, are fuzzed for (Tests/Fuzz): on any input each
/// terminates, respects its limits, and reaches the same verdicts whether the
/// bytes arrive at once or split across reads. The JSON body scanner runs on
/// the input and on what follows its first blank line (see `checkJSON`).
/// Violations stop the process, which is what a fuzzer notices.
public enum HTTPParserFuzzing {
    /// Small limits, so the fuzzer reaches the limit paths with short inputs.
    static let limits: HTTPParseLimits = {
        var limits = HTTPParseLimits()
        limits.requestLineBytesMax = 512
        limits.headerBytesMax = 1_024
        limits.headerCountMax = 16
        limits.bodyBytesMax = 2_048
        limits.chunkLineBytesMax = 64
        return limits
    }()

    public static func check(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        let whole = outcomes(bytes, splits: [])
        // Split points derived from the input itself, so the fuzzer explores them.
        let first = bytes.isEmpty ? 0 : Int(bytes[0]) % max(bytes.count, 1)
        let second = bytes.count < 2 ? 0 : (Int(bytes[1]) * 7 + first) % max(bytes.count, 1)
        let split = outcomes(bytes, splits: [first, second].sorted())
        precondition(whole == split, "the parser's verdicts depend on how the input was split: \(whole) vs \(split)")
        let byteByByte = bytes.count <= 4_096 ? outcomes(bytes, splits: Array(0..<bytes.count)) : whole
        precondition(whole == byteByByte, "byte-by-byte delivery changed the verdicts: \(whole) vs \(byteByByte)")

        let response = responseOutcome(bytes, splits: [])
        precondition(response == responseOutcome(bytes, splits: [first, second].sorted()),
                     "the response parser's verdict depends on how the input was split")
        if bytes.count <= 4_096 {
            precondition(response == responseOutcome(bytes, splits: Array(0..<bytes.count)),
                         "byte-by-byte delivery changed the response parser's verdict")
        }
        checkJSON(bytes)
        // And on what would be the body: whatever follows the first blank line.
        if let blank = (0..<max(bytes.count - 3, 0)).first(where: { bytes[$0] == 0x0D && bytes[$0 + 1] == 0x0A && bytes[$0 + 2] == 0x0D && bytes[$0 + 3] == 0x0A }) {
            checkJSON(Array(bytes[(blank + 4)...]))
        }
    }

    /// The JSON body scanner terminates within its depth bound and reports
    /// number literals inside the input; on valid JSON (as Foundation reads
    /// it) it finds the same duplicate when the input is wrapped as the
    /// value of a key, one level deeper.
    static func checkJSON(_ bytes: [UInt8]) {
        let finding = JSONBodyScanner.scan(bytes)
        for (range, path) in JSONBodyScanner.numbers(in: bytes, limit: 64, where: { _ in true }) {
            precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count && !range.isEmpty, "a number outside the input")
            let first = bytes[range.lowerBound]
            precondition(first == UInt8(ascii: "-") || (first >= 0x30 && first <= 0x39), "a number literal starting with \(first)")
            precondition(!path.isEmpty, "a number without a path")
        }
        checkVectorJSON(bytes)
        guard (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil else { return }
        let wrapped = JSONBodyScanner.scan(Array(#"{"w":"#.utf8) + bytes + Array("}".utf8), depthMax: JSONBodyScanner.depthMaxDefault + 1)
        switch (finding, wrapped) {
        case (.duplicate(let path)?, .duplicate(let outer)?):
            precondition(outer == "w." + path || outer == "w" + path, "the wrapped duplicate is \(outer), not w.\(path)")
        case (.duplicate?, _):
            preconditionFailure("a duplicate vanished when the input was wrapped")
        default:
            break
        }
    }

    private struct VectorBody: Decodable { let vector: [Double] }
    private struct BatchEntry: Decodable { let pid: String; let vector: [Double] }
    private struct BatchBody: Decodable { let vectors: [BatchEntry] }

    /// `VectorJSON`'s fast path reads a body only as `JSONDecoder` (with the
    /// routes' settings) does: whatever it answers for, the decoder accepts,
    /// with the same texts and bit for bit the same numbers.
    static func checkVectorJSON(_ bytes: [UInt8]) {
        func same(_ fast: [Double], _ decoded: [Double]) -> Bool {
            fast.count == decoded.count && zip(fast, decoded).allSatisfy { $0.bitPattern == $1.bitPattern }
        }
        if let fast = VectorJSON.numbers(in: bytes, key: "vector") {
            let decoded = try? JSONCoding.decoder.decode(VectorBody.self, from: Data(bytes))
            precondition(decoded.map { same(fast, $0.vector) } == true, "the fast path read a vector body the decoder reads otherwise")
            precondition(JSONBodyScanner.scan(bytes) == nil, "the fast path read a body the scanner refuses")
        }
        if let fast = VectorJSON.entries(in: bytes, list: "vectors", text: "pid", numbers: "vector") {
            let decoded = try? JSONCoding.decoder.decode(BatchBody.self, from: Data(bytes))
            precondition(decoded.map { body in
                body.vectors.count == fast.count && zip(fast, body.vectors).allSatisfy { $0.text == $1.pid && same($0.numbers, $1.vector) }
            } == true, "the fast path read a batch body the decoder reads otherwise")
            precondition(JSONBodyScanner.scan(bytes) == nil, "the fast path read a body the scanner refuses")
        }
    }

    /// The response parser's verdict on a connection that delivers `bytes` and then closes.
    static func responseOutcome(_ bytes: [UInt8], splits: [Int]) -> String {
        var parser = ResponseParser(limits: limits)
        var input = InputBuffer()
        var start = 0
        for end in splits + [bytes.count] where end >= start {
            input.append(Array(bytes[start..<end]))
            start = end
            let closed = end == bytes.count
            switch parser.parse(&input, peerClosed: closed) {
            case .needMore:
                precondition(!closed, "the response parser wants more after the peer closed")
            case .response(let response, let reusable):
                precondition(response.body.count <= limits.bodyBytesMax, "response body limit not enforced")
                return "\(response.status) \(response.body.count) \(reusable)"
            case .failure(let error):
                return "\(error.status) \(error.code)"
            }
        }
        return "needMore"
    }

    /// One line per event: requests as method, target and body size; errors as status and code.
    static func outcomes(_ bytes: [UInt8], splits: [Int]) -> [String] {
        var parser = RequestParser(limits: limits)
        var input = InputBuffer()
        var results: [String] = []
        var start = 0
        for end in splits + [bytes.count] where end >= start {
            input.append(Array(bytes[start..<end]))
            start = end
            // Each event consumes input or completes a request, so this is bounded by the input size.
            for _ in 0...(bytes.count + 2) {
                let before = input.count
                switch parser.parse(&input) {
                case .needMore:
                    break
                case .head(let head):
                    precondition(head.headers.count <= limits.headerCountMax, "header count limit not enforced")
                    continue
                case .request(let request, _):
                    precondition(request.body.count <= limits.bodyBytesMax, "body limit not enforced")
                    results.append("\(request.method) \(request.target) \(request.body.count)")
                    if input.count < before || !input.isEmpty { continue }
                case .failure(let error):
                    results.append("\(error.status) \(error.code)")
                    return results
                }
                break
            }
        }
        return results
    }
}
