/// Size limits the parser enforces, each answered with its own status.
public struct HTTPParseLimits: Sendable, Equatable {
    /// Longest request line (method, target, version), in bytes. Over: 414.
    public var requestLineBytesMax = 8 * 1024
    /// Largest header block (all field lines), in bytes. Over: 431.
    public var headerBytesMax = 32 * 1024
    /// Most header fields. Over: 431.
    public var headerCountMax = 100
    /// Largest body, after de-chunking, for any route (a route may set a
    /// lower limit of its own). Over: 413.
    public var bodyBytesMax = 1024 * 1024
    /// Longest chunk-size line, chunk extensions included. Over: 400.
    public var chunkLineBytesMax = 1024

    public init() {}
}

/// Why a request was refused while parsing. The connection is closed after
/// the error response: framing can no longer be trusted.
public struct HTTPParseError: Error, Equatable, Sendable {
    public let status: Int
    public let code: String
    public let detail: String

    static func bad(_ code: String, _ detail: String) -> HTTPParseError { HTTPParseError(status: 400, code: code, detail: detail) }
}

/// What the server learns once the header block is complete.
struct RequestHead {
    let method: String
    let target: String
    let version: HTTPVersion
    let headers: HTTPHeaders
    let keepAlive: Bool
    let expectsContinue: Bool
    let hasBody: Bool
    /// The `Content-Length` of the body; nil when it is chunked or absent.
    let declaredBodyBytes: Int?
}

/// An incremental, strict HTTP/1.1 request parser (RFC 9112). Feed it the
/// connection's input buffer after every read; it consumes exactly one
/// request's bytes, leaving pipelined requests in the buffer.
///
/// Strictness, where RFC 9112 lets a server choose: CRLF line endings only
/// (a bare LF or CR is refused), no obs-fold, exactly one SP between the
/// parts of the request line, no whitespace between a field name and its
/// colon, one Host in HTTP/1.1, Transfer-Encoding together with
/// Content-Length refused, `chunked` the only transfer coding understood.
struct RequestParser {
    enum Event {
        case needMore
        /// The header block is complete (sent once per request, before the body).
        case head(RequestHead)
        case request(HTTPRequest, keepAlive: Bool)
        case failure(HTTPParseError)
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
    }

    private enum Phase {
        case requestLine
        case headers
        case body
        case chunked(ChunkedBodyReader)
    }

    let limits: HTTPParseLimits
    private var phase = Phase.requestLine
    private var lines = LineReader()
    private var method = ""
    private var target = ""
    private var version = HTTPVersion.http11
    private var headers = HTTPHeaders()
    private var headerBytes = 0
    private var framing = Framing.none
    private var keepAlive = true
    private var body: [UInt8] = []
    /// This request's body limit: `limits.bodyBytesMax` unless `restrictBody` lowered it.
    private var bodyBytesMax: Int

    init(limits: HTTPParseLimits) {
        self.limits = limits
        bodyBytesMax = limits.bodyBytesMax
    }

    /// Body bytes of the current request decoded so far.
    var bodyBytesRead: Int { body.count }

    /// Lowers the current request's body limit, once its head is parsed and
    /// before its body is read: a declared length over it is refused here,
    /// a chunked body as soon as its running total passes it.
    mutating func restrictBody(to limit: Int) -> HTTPParseError? {
        precondition(isReadingBody && body.isEmpty, "the body limit is set between the head and the body")
        bodyBytesMax = min(max(limit, 0), bodyBytesMax)
        if case .length(let length) = framing, length > bodyBytesMax { return Self.tooLarge(bodyBytesMax) }
        return nil
    }

    static func tooLarge(_ limit: Int) -> HTTPParseError {
        HTTPParseError(status: 413, code: "body_too_large", detail: "the body exceeds \(limit) bytes")
    }

    /// True while nothing of the next request has been parsed.
    var isBetweenRequests: Bool {
        if case .requestLine = phase { return !lines.hasPartialLine }
        return false
    }

    /// True once the head is parsed and the body is being read.
    var isReadingBody: Bool {
        switch phase {
        case .requestLine, .headers: return false
        case .body, .chunked: return true
        }
    }

    mutating func parse(_ input: inout InputBuffer) -> Event {
        while true {
            switch phase {
            case .requestLine:
                guard let line = lines.next(&input, limit: limits.requestLineBytesMax, onOverflow: HTTPParseError(
                    status: 414, code: "request_line_too_long", detail: "the request line exceeds \(limits.requestLineBytesMax) bytes"))
                else { return .needMore }
                switch line {
                case .failure(let error): return .failure(error)
                case .line(let bytes):
                    // RFC 9112 section 2.2: a server SHOULD ignore empty lines before the request line.
                    if bytes.isEmpty { continue }
                    if let error = parseRequestLine(bytes) { return .failure(error) }
                    phase = .headers
                }
            case .headers:
                let remaining = limits.headerBytesMax - headerBytes
                guard let line = lines.next(&input, limit: remaining, onOverflow: HTTPParseError(
                    status: 431, code: "header_too_large", detail: "the header block exceeds \(limits.headerBytesMax) bytes"))
                else { return .needMore }
                switch line {
                case .failure(let error): return .failure(error)
                case .line(let bytes):
                    if bytes.isEmpty {
                        switch finishHead() {
                        case .failure(let error): return .failure(error)
                        case .success(let head): return .head(head)
                        }
                    }
                    headerBytes += bytes.count + 2
                    if let error = FieldLine.parse(bytes, into: &headers) { return .failure(error) }
                    if headers.count > limits.headerCountMax {
                        return .failure(HTTPParseError(status: 431, code: "too_many_headers",
                                                       detail: "more than \(limits.headerCountMax) header fields"))
                    }
                }
            case .body:
                switch framing {
                case .none:
                    return complete()
                case .length(let length):
                    guard input.count >= length else { return .needMore }
                    body = input.take(length)
                    return complete()
                case .chunked:
                    phase = .chunked(ChunkedBodyReader(limits: limits, bodyBytesMax: bodyBytesMax))
                }
            case .chunked(var reader):
                let progress = reader.read(&input, into: &body)
                phase = .chunked(reader)
                switch progress {
                case .needMore: return .needMore
                case .failure(let error): return .failure(error)
                case .done: return complete()
                }
            }
        }
    }

    private mutating func complete() -> Event {
        let request = HTTPRequest(method: method, target: target, version: version, headers: headers, body: body)
        let keepAlive = keepAlive
        self = RequestParser(limits: limits)
        return .request(request, keepAlive: keepAlive)
    }

    // MARK: Request line

    private mutating func parseRequestLine(_ line: ArraySlice<UInt8>) -> HTTPParseError? {
        let parts = line.split(separator: 0x20, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].contains(0x20) else {
            return .bad("bad_request_line", "the request line must be METHOD SP target SP version")
        }
        guard parts[0].count <= 32, parts[0].allSatisfy(ASCIIByte.isToken) else {
            return .bad("bad_request_line", "the method is not a token")
        }
        guard parts[1].allSatisfy(ASCIIByte.isVisible) else {
            return .bad("bad_request_line", "the request target has characters that are not allowed")
        }
        switch Array(parts[2]) {
        case Array("HTTP/1.1".utf8): version = .http11
        case Array("HTTP/1.0".utf8): version = .http10
        case let other where other.count == 8 && other.starts(with: Array("HTTP/".utf8)) && ASCIIByte.isDigitDotDigit(other[5...]):
            return HTTPParseError(status: 505, code: "unsupported_version", detail: "only HTTP/1.0 and HTTP/1.1 are served")
        default:
            return .bad("bad_request_line", "the version is not HTTP/1.x")
        }
        method = String(decoding: parts[0], as: UTF8.self)
        let rawTarget = String(decoding: parts[1], as: UTF8.self)
        if rawTarget.hasPrefix("/") || (rawTarget == "*" && method == "OPTIONS") {
            target = rawTarget
        } else if let path = Self.originForm(ofAbsolute: rawTarget) {
            // RFC 9112 section 3.2.2: a server MUST accept the absolute-form.
            target = path
        } else {
            return .bad("bad_request_line", "the request target must be a path")
        }
        return nil
    }

    private static func originForm(ofAbsolute target: String) -> String? {
        let lowered = target.lowercased()
        guard let scheme = ["http://", "https://"].first(where: { lowered.hasPrefix($0) }) else { return nil }
        let rest = target.dropFirst(scheme.count)
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let path = String(rest[slash...])
        return path.hasPrefix("?") ? "/" + path : path
    }

    // MARK: Framing

    private mutating func finishHead() -> Result<RequestHead, HTTPParseError> {
        if version == .http11 && headers.values(lowercased: "host").count != 1 {
            return .failure(.bad("missing_host", "an HTTP/1.1 request needs exactly one Host header"))
        }
        let transferEncodings = headers.values(lowercased: "transfer-encoding")
        let contentLengths = headers.values(lowercased: "content-length")
        if !transferEncodings.isEmpty {
            if version == .http10 {
                return .failure(.bad("bad_framing", "Transfer-Encoding is not allowed in HTTP/1.0"))
            }
            if !contentLengths.isEmpty {
                return .failure(.bad("conflicting_framing", "Content-Length and Transfer-Encoding together are refused"))
            }
            let codings = transferEncodings.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces().lowercased() }
            guard codings.last == "chunked", codings.filter({ $0 == "chunked" }).count == 1 else {
                return .failure(.bad("bad_framing", "chunked must be the final transfer coding, applied once"))
            }
            guard codings.count == 1 else {
                return .failure(HTTPParseError(status: 501, code: "unsupported_transfer_coding",
                                               detail: "only the chunked transfer coding is supported"))
            }
            framing = .chunked
        } else if !contentLengths.isEmpty {
            let values = contentLengths.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { $0.trimmingSpaces() }
            guard let first = values.first, values.allSatisfy({ $0 == first }), !first.isEmpty, first.count <= 18,
                  first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let length = Int(first) else {
                return .failure(.bad("bad_content_length", "Content-Length must be one non-negative integer"))
            }
            guard length <= limits.bodyBytesMax else { return .failure(Self.tooLarge(limits.bodyBytesMax)) }
            framing = length > 0 ? .length(length) : .none
        } else {
            framing = .none
        }
        var expectsContinue = false
        let expectations = headers.values(lowercased: "expect")
        if !expectations.isEmpty {
            guard expectations.count == 1, expectations[0].lowercased() == "100-continue" else {
                return .failure(HTTPParseError(status: 417, code: "expectation_failed", detail: "only Expect: 100-continue is supported"))
            }
            expectsContinue = version == .http11
        }
        keepAlive = version == .http11 ? !headers.hasToken("close", in: "connection") : headers.hasToken("keep-alive", in: "connection")
        phase = .body
        let hasBody: Bool
        if case .none = framing { hasBody = false } else { hasBody = true }
        var declaredBodyBytes: Int?
        if case .length(let length) = framing { declaredBodyBytes = length }
        // Nothing is reserved for the body here: the server decides from the
        // head whether it is read at all.
        return .success(RequestHead(method: method, target: target, version: version, headers: headers,
                                    keepAlive: keepAlive, expectsContinue: expectsContinue && hasBody, hasBody: hasBody,
                                    declaredBodyBytes: declaredBodyBytes))
    }
}

extension ASCIIByte {
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x61...0x66: return byte - 0x61 + 10
        case 0x41...0x46: return byte - 0x41 + 10
        default: return nil
        }
    }

    static func isDigitDotDigit(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.count == 3 && bytes[bytes.startIndex] >= 0x30 && bytes[bytes.startIndex] <= 0x39
            && bytes[bytes.startIndex + 1] == UInt8(ascii: ".")
            && bytes[bytes.startIndex + 2] >= 0x30 && bytes[bytes.startIndex + 2] <= 0x39
    }
}
