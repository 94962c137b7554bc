@testable import DomicileNet
import XCTest

final class RequestParserTests: XCTestCase {
    var limits: HTTPParseLimits {
        var limits = HTTPParseLimits()
        limits.requestLineBytesMax = 256
        limits.headerBytesMax = 512
        limits.headerCountMax = 8
        limits.bodyBytesMax = 1_000
        return limits
    }

    /// Feeds `text` in one piece and returns the final event.
    func parse(_ text: String, byteByByte: Bool = false) -> (events: [String], request: HTTPRequest?, error: HTTPParseError?) {
        var parser = RequestParser(limits: limits)
        var input = InputBuffer()
        var events: [String] = []
        let bytes = Array(text.utf8)
        let chunks: [[UInt8]] = byteByByte ? bytes.map { [$0] } : [bytes]
        for chunk in chunks {
            input.append(chunk)
            loop: while true {
                switch parser.parse(&input) {
                case .needMore: break loop
                case .head: events.append("head")
                case .request(let request, _): return (events + ["request"], request, nil)
                case .failure(let error): return (events + ["failure"], nil, error)
                }
            }
        }
        return (events + ["needMore"], nil, nil)
    }

    func test_parser_readsARequestWithBody_inOnePieceOrByteByByte() {
        let text = "POST /v1/echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nX-Twice: 1\r\nx-twice: 2\r\nContent-Length: 5\r\n\r\nhello"
        for byteByByte in [false, true] {
            let result = parse(text, byteByByte: byteByByte)
            XCTAssertEqual(result.events, ["head", "request"])
            XCTAssertEqual(result.request?.method, "POST")
            XCTAssertEqual(result.request?.path, "/v1/echo")
            XCTAssertEqual(result.request?.query, "x=1")
            XCTAssertEqual(result.request?.headers["CONTENT-TYPE"], "application/json", "case-insensitive")
            XCTAssertEqual(result.request?.headers.values("x-twice"), ["1", "2"], "repeated headers kept in order")
            XCTAssertEqual(result.request?.body, Array("hello".utf8))
        }
    }

    func test_parser_decodesChunkedBodies_withExtensionsAndTrailers() {
        let text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-Field: x\r\n\r\n"
        for byteByByte in [false, true] {
            XCTAssertEqual(parse(text, byteByByte: byteByByte).request?.body, Array("hello world".utf8))
        }
    }

    func test_parser_leavesPipelinedRequestsInTheBuffer() {
        var parser = RequestParser(limits: limits)
        var input = InputBuffer()
        input.append(Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        var targets: [String] = []
        while case let event = parser.parse(&input), !(event.isNeedMore) {
            if case .request(let request, _) = event { targets.append(request.target) }
        }
        XCTAssertEqual(targets, ["/a", "/b"])
    }

    func test_parser_keepAliveFollowsVersionAndConnection() {
        func keepAlive(_ text: String) -> Bool? {
            var parser = RequestParser(limits: limits)
            var input = InputBuffer()
            input.append(Array(text.utf8))
            while true {
                switch parser.parse(&input) {
                case .request(_, let keepAlive): return keepAlive
                case .head: continue
                default: return nil
                }
            }
        }
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), true)
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.0\r\n\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), true)
    }

    func test_parser_acceptsAbsoluteFormTargets() {
        XCTAssertEqual(parse("GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n").request?.target, "/x?y=1")
    }

    /// Each malformed class with its status and code (RFC 9112's "reject" cases and our limits).
    func test_parser_rejectsMalformedRequests_withTheirStatus() {
        let cases: [(String, String, Int, String)] = [
            ("bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400, "bare_line_feed"),
            ("two spaces in request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request_line"),
            ("no version", "GET /\r\nHost: a\r\n\r\n", 400, "bad_request_line"),
            ("method not a token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request_line"),
            ("control char in target", "GET /a\u{01}b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request_line"),
            ("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request_line"),
            ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported_version"),
            ("garbage version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400, "bad_request_line"),
            ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400, "missing_host"),
            ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "missing_host"),
            ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", 400, "obsolete_line_folding"),
            ("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "bad_header"),
            ("no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, "bad_header"),
            ("NUL in value", "GET / HTTP/1.1\r\nHost: a\u{0}b\r\n\r\n", 400, "bad_header"),
            ("CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "conflicting_framing"),
            ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_framing"),
            ("TE not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_framing"),
            ("chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400, "bad_framing"),
            ("unsupported coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported_transfer_coding"),
            ("two different CLs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "bad_content_length"),
            ("negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "bad_content_length"),
            ("CL with sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400, "bad_content_length"),
            ("huge CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400, "bad_content_length"),
            ("bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_chunk"),
            ("chunk size with junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", 400, "bad_chunk"),
            ("chunk without CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400, "bad_chunk"),
            ("overflowing chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n", 400, "bad_chunk"),
            ("unknown expectation", "POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", 417, "expectation_failed"),
            ("request line too long", "GET /\(String(repeating: "a", count: 300)) HTTP/1.1\r\nHost: a\r\n\r\n", 414, "request_line_too_long"),
            ("header block too large", "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "b", count: 600))\r\n\r\n", 431, "header_too_large"),
            ("too many headers", "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<9).map { "X\($0): y\r\n" }.joined() + "\r\n", 431, "too_many_headers"),
            ("body too large by CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413, "body_too_large"),
            ("body too large by chunks", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3E8\r\n\(String(repeating: "c", count: 1000))\r\n1\r\n", 413, "body_too_large"),
        ]
        for (name, text, status, code) in cases {
            let result = parse(text)
            XCTAssertEqual(result.error?.status, status, name)
            XCTAssertEqual(result.error?.code, code, name)
            // Delivered byte by byte, the same verdict.
            XCTAssertEqual(parse(text, byteByByte: true).error?.code, code, "\(name), byte by byte")
        }
    }

    func test_parser_waitsForIncompleteInput() {
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: a\r\n").events, ["needMore"])
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc").events, ["head", "needMore"])
    }
}

extension RequestParser.Event {
    var isNeedMore: Bool {
        if case .needMore = self { return true }
        return false
    }
}

final class RouterTests: XCTestCase {
    func test_router_matchesParametersAndPrefersLiterals() {
        var router = Router()
        router.add("GET", "/v1/subjects/{pid}", .inline { _ in .text("get") })
        router.add("POST", "/v1/subjects/lookup", .inline { _ in .text("lookup") })
        router.add("POST", "/v1/subjects/{pid}/consents", .inline { _ in .text("consent") })
        router.add("GET", "/v1/subjects/{pid}/consents", .inline { _ in .text("consents") })

        guard case .found(let route, let parameters) = router.match(method: "GET", path: "/v1/subjects/psn%3Av1%3Aeu%3Aabc") else {
            return XCTFail("no match")
        }
        XCTAssertEqual(route.pattern, "/v1/subjects/{pid}")
        XCTAssertEqual(parameters["pid"], "psn:v1:eu:abc", "percent-decoded")
        guard case .found(let lookup, _) = router.match(method: "POST", path: "/v1/subjects/lookup") else { return XCTFail() }
        XCTAssertEqual(lookup.pattern, "/v1/subjects/lookup")
        guard case .methodNotAllowed(let allowed) = router.match(method: "DELETE", path: "/v1/subjects/x/consents") else { return XCTFail() }
        XCTAssertEqual(allowed, ["GET", "HEAD", "POST"], "HEAD is served by GET")
        guard case .found(let head, _) = router.match(method: "HEAD", path: "/v1/subjects/x/consents") else { return XCTFail("HEAD") }
        XCTAssertEqual(head.method, "GET")
        guard case .methodNotAllowed(let postOnly) = router.match(method: "HEAD", path: "/v1/subjects/lookup") else { return XCTFail() }
        XCTAssertEqual(postOnly, ["POST"])
        guard case .methodNotAllowed(let lookupAllowed) = router.match(method: "GET", path: "/v1/subjects/lookup") else {
            return XCTFail("a literal path is not a parameter of a broader pattern")
        }
        XCTAssertEqual(lookupAllowed, ["POST"])
        guard case .notFound = router.match(method: "GET", path: "/v1/nothing") else { return XCTFail() }
        guard case .notFound = router.match(method: "GET", path: "/v1/subjects/") else { return XCTFail("empty parameter") }
        guard case .badPath = router.match(method: "GET", path: "/v1/subjects/%zz") else { return XCTFail() }
    }
}

final class FuzzCorpusTests: XCTestCase {
    /// The fuzzer's seed corpus passes its check in the ordinary test run too.
    func test_fuzzSeedCorpus_passesTheSplitInvarianceCheck() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fuzz/corpus/http").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path)
        XCTAssertGreaterThan(files.count, 10)
        for file in files {
            let bytes = Array(try Data(contentsOf: corpus.appendingPathComponent(file)))
            bytes.withUnsafeBytes { HTTPParserFuzzing.check($0) }
        }
    }

    func test_parserOutcomes_areTheSameHoweverTheInputIsSplit() {
        let text = Array("GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyzGET / HTTP/1.1\nX".utf8)
        let whole = HTTPParserFuzzing.outcomes(text, splits: [])
        XCTAssertEqual(whole, ["GET /a 0", "POST /b 3", "400 bare_line_feed"])
        XCTAssertEqual(HTTPParserFuzzing.outcomes(text, splits: Array(0..<text.count)), whole)
    }
}
