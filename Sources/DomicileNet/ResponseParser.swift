import Foundation

/// A response as the client received it.
public struct HTTPClientResponse: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    public let body: [UInt8]

    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONCoding.decoder.decode(T.self, from: Data(body))
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// An incremental HTTP/1.1 response parser for the client. Interim (1xx)
/// responses are skipped; a body without length runs to the end of the
/// connection, which then cannot be reused.
struct ResponseParser {
    enum Event {
        case needMore
        case response(HTTPClientResponse, reusable: Bool)
        case failure(HTTPParseError)
    }

    private enum Phase {
        case statusLine
        case headers
        case length(Int)
        case chunked(ChunkedBodyReader)
        case untilClose
    }

    let limits: HTTPParseLimits
    private var phase = Phase.statusLine
    private var lines = LineReader()
    private var status = 0
    private var version = HTTPVersion.http11
    private var headers = HTTPHeaders()
    private var headerBytes = 0
    private var body: [UInt8] = []

    init(limits: HTTPParseLimits) { self.limits = limits }

    /// True once any byte of a response has been consumed.
    private(set) var started = false

    /// `peerClosed`: the connection reached end-of-file.
    mutating func parse(_ input: inout InputBuffer, peerClosed: Bool) -> Event {
        if !input.isEmpty { started = true }
        while true {
            switch phase {
            case .statusLine:
                guard let line = lines.next(&input, limit: limits.requestLineBytesMax,
                                            onOverflow: .bad("bad_status_line", "status line too long")) else {
                    return peerClosed ? .failure(.bad("connection_closed", "the peer closed before responding")) : .needMore
                }
                guard case .line(let bytes) = line else { if case .failure(let error) = line { return .failure(error) }; return .needMore }
                guard bytes.count >= 12, bytes.starts(with: Array("HTTP/1.".utf8)),
                      bytes[bytes.startIndex + 8] == 0x20,
                      let code = Int(String(decoding: bytes[(bytes.startIndex + 9)..<(bytes.startIndex + 12)], as: UTF8.self)),
                      (100...599).contains(code) else {
                    return .failure(.bad("bad_status_line", "malformed status line"))
                }
                version = bytes[bytes.startIndex + 7] == UInt8(ascii: "0") ? .http10 : .http11
                status = code
                phase = .headers
            case .headers:
                guard let line = lines.next(&input, limit: limits.headerBytesMax - headerBytes, onOverflow: HTTPParseError(
                    status: 431, code: "header_too_large", detail: "response header block too large")) else {
                    return peerClosed ? .failure(.bad("connection_closed", "the peer closed mid-header")) : .needMore
                }
                switch line {
                case .failure(let error): return .failure(error)
                case .line(let bytes) where bytes.isEmpty:
                    if (100...199).contains(status) {
                        // An interim response (100 Continue): the real one follows.
                        self = ResponseParser(limits: limits)
                        started = true
                        continue
                    }
                    if let error = chooseFraming() { return .failure(error) }
                case .line(let bytes):
                    headerBytes += bytes.count + 2
                    if let error = FieldLine.parse(bytes, into: &headers) { return .failure(error) }
                }
            case .length(let length):
                guard input.count >= length else {
                    return peerClosed ? .failure(.bad("connection_closed", "the peer closed mid-body")) : .needMore
                }
                body = input.take(length)
                return complete(reusable: true)
            case .chunked(var reader):
                let progress = reader.read(&input, into: &body)
                phase = .chunked(reader)
                switch progress {
                case .needMore:
                    return peerClosed ? .failure(.bad("connection_closed", "the peer closed mid-body")) : .needMore
                case .failure(let error): return .failure(error)
                case .done: return complete(reusable: true)
                }
            case .untilClose:
                guard body.count + input.count <= limits.bodyBytesMax else {
                    return .failure(HTTPParseError(status: 413, code: "body_too_large", detail: "response body too large"))
                }
                body.append(contentsOf: input.take(input.count))
                return peerClosed ? complete(reusable: false) : .needMore
            }
        }
    }

    private mutating func chooseFraming() -> HTTPParseError? {
        if status == 204 || status == 304 {
            phase = .length(0)
        } else if headers.contains("transfer-encoding") {
            guard headers.values("transfer-encoding").last?.lowercased().hasSuffix("chunked") == true else {
                return .bad("bad_framing", "unsupported response transfer coding")
            }
            phase = .chunked(ChunkedBodyReader(limits: limits))
        } else if let text = headers["content-length"] {
            guard let length = Int(text), length >= 0 else { return .bad("bad_content_length", "bad response Content-Length") }
            guard length <= limits.bodyBytesMax else {
                return HTTPParseError(status: 413, code: "body_too_large", detail: "response body too large")
            }
            phase = .length(length)
        } else {
            phase = .untilClose
        }
        return nil
    }

    private mutating func complete(reusable: Bool) -> Event {
        let keepAlive = reusable && version == .http11 && !headers.hasToken("close", in: "connection")
        return .response(HTTPClientResponse(status: status, headers: headers, body: body), reusable: keepAlive)
    }
}
