import Foundation

public enum HTTPVersion: Sendable, Equatable {
    case http10
    case http11

    var text: String { self == .http10 ? "HTTP/1.0" : "HTTP/1.1" }
}

/// A complete request, body included.
public struct HTTPRequest: Sendable {
    public let method: String
    /// The request-target as received (origin-form: path and query).
    public let target: String
    public let version: HTTPVersion
    public let headers: HTTPHeaders
    public let body: [UInt8]
    /// Set by the router: `{name}` segments of the matched route, percent-decoded.
    public internal(set) var pathParameters: [String: String] = [:]
    /// Echoed from `X-Request-Id` when the client sent a sane one, else generated.
    public internal(set) var requestID: String = ""
    /// The matched route's pattern (for metrics and logs: no values in it).
    public internal(set) var routePattern: String?

    public init(method: String, target: String, version: HTTPVersion = .http11, headers: HTTPHeaders = HTTPHeaders(),
                body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
    }

    /// The path part of the target, still percent-encoded.
    public var path: Substring {
        guard let question = target.firstIndex(of: "?") else { return target[...] }
        return target[..<question]
    }

    /// The raw query string, if any.
    public var query: Substring? {
        guard let question = target.firstIndex(of: "?") else { return nil }
        return target[target.index(after: question)...]
    }

    /// Query parameters, percent-decoded (`+` is a space); the last value of a
    /// repeated name wins. Malformed encodings are an error, not a guess.
    public func queryParameters() throws(HTTPError) -> [String: String] {
        guard let query, !query.isEmpty else { return [:] }
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = PercentEncoding.decode(parts[0], plusIsSpace: true),
                  let value = PercentEncoding.decode(parts.count > 1 ? parts[1] : "", plusIsSpace: true) else {
                throw HTTPError(status: 400, code: "invalid_query", detail: "the query string has a malformed percent-encoding")
            }
            parameters[name] = value
        }
        return parameters
    }

    /// The value of path parameter `name` (the route guarantees it exists).
    public func parameter(_ name: String) -> String {
        guard let value = pathParameters[name] else { preconditionFailure("route has no parameter {\(name)}") }
        return value
    }

    /// Decodes the JSON body as `decode` does, trying `fast` first: a
    /// reader that answers only for bodies it reads exactly as `decode`
    /// would (`VectorJSON`), and nil to leave the body to `decode`.
    public func decode<T: Decodable>(_ type: T.Type, fast: ([UInt8]) -> T?) throws(HTTPError) -> T {
        try checkJSONContentType()
        if let value = fast(body) { return value }
        return try decode(type)
    }

    /// 415 `unsupported_media_type` for a body said to be anything but JSON.
    private func checkJSONContentType() throws(HTTPError) {
        if let contentType = headers["content-type"],
           !contentType.lowercased().hasPrefix("application/json") && !contentType.lowercased().hasPrefix("application/problem+json") {
            throw HTTPError(status: 415, code: "unsupported_media_type", detail: "send the body as application/json")
        }
    }

    /// Decodes the JSON body. Errors name the field and what was wrong, never
    /// the value that was sent.
    public func decode<T: Decodable>(_ type: T.Type, using decoder: JSONDecoder = JSONCoding.decoder) throws(HTTPError) -> T {
        try checkJSONContentType()
        guard !body.isEmpty else { throw HTTPError(status: 400, code: "invalid_json", detail: "the request body is empty") }
        switch JSONBodyScanner.scan(body) {
        case .duplicate(let path)?:
            throw HTTPError(status: 400, code: "duplicate_key", detail: "\(path) appears more than once in its object")
        case .tooDeep?:
            throw HTTPError(status: 400, code: "invalid_json",
                            detail: "the body is nested deeper than \(JSONBodyScanner.depthMaxDefault) levels")
        case nil:
            break
        }
        do {
            return try decoder.decode(T.self, from: Data(body))
        } catch let error as DecodingError {
            if JSONCoding.isSyntaxError(error),
               let path = JSONCoding.numberNotFitting(body, decode: { _ = try decoder.decode(T.self, from: Data($0)) }) {
                throw HTTPError(status: 422, code: "number_out_of_range",
                                detail: "\(path) is a number its field cannot hold (out of range, or not an integer)")
            }
            throw HTTPError(status: 400, code: "invalid_json", detail: JSONCoding.describe(error))
        } catch let error as HTTPError {
            throw error
        } catch {
            throw HTTPError(status: 400, code: "invalid_json", detail: "the body is not valid JSON")
        }
    }
}

/// A response. `Content-Length`, `Date`, `Connection` and `X-Request-Id` are
/// added by the server when it is written.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func text(_ text: String, status: Int = 200, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": contentType], body: Array(text.utf8))
    }

    public static func json<T: Encodable>(_ value: T, status: Int = 200, encoder: JSONEncoder = JSONCoding.encoder) -> HTTPResponse {
        do {
            let body = try encoder.encode(value)
            return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Array(body))
        } catch {
            // Our own response types always encode; failing here is a bug.
            preconditionFailure("response of type \(T.self) failed to encode: \(error)")
        }
    }

    /// Raw JSON bytes built by hand on a hot path.
    public static func json(bytes: [UInt8], status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: bytes)
    }

    /// An RFC 9457 problem document with Domicile's stable `code`.
    public static func problem(_ error: HTTPError) -> HTTPResponse {
        var response = HTTPResponse.json(ProblemDocument(error), status: error.status)
        response.headers.set("Content-Type", "application/problem+json")
        for (name, value) in error.headers { response.headers.set(name, value) }
        return response
    }

    public static func noContent() -> HTTPResponse { HTTPResponse(status: 204) }
}

/// An error answered to the client as problem+json. `detail` must never
/// contain an identifier, a feature value or a vector: say which field and
/// what rule, not what was sent.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public let status: Int
    public let code: String
    public let title: String
    public let detail: String
    public var headers: HTTPHeaders
    /// Extra members of the problem document (e.g. `home_region`).
    public var extensions: [String: JSONValue]

    public init(status: Int, code: String, title: String? = nil, detail: String,
                headers: HTTPHeaders = HTTPHeaders(), extensions: [String: JSONValue] = [:]) {
        self.status = status
        self.code = code
        self.title = title ?? HTTPStatus.reason(status)
        self.detail = detail
        self.headers = headers
        self.extensions = extensions
    }

    public var description: String { "\(status) \(code): \(detail)" }
}

struct ProblemDocument: Encodable {
    let error: HTTPError

    init(_ error: HTTPError) { self.error = error }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode("https://domicile.dev/problems/\(error.code)", forKey: Key("type"))
        try container.encode(error.title, forKey: Key("title"))
        try container.encode(error.status, forKey: Key("status"))
        try container.encode(error.detail, forKey: Key("detail"))
        try container.encode(error.code, forKey: Key("code"))
        for (name, value) in error.extensions.sorted(by: { $0.key < $1.key }) {
            try container.encode(value, forKey: Key(name))
        }
    }
}

/// A JSON value for open-ended members (problem extensions and the like).
public indirect enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// Domicile's JSON conventions: snake_case members, RFC 3339 UTC dates.
public enum JSONCoding {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    /// The decoder's "not valid JSON", with no field named. Foundation says
    /// the same for a number that does not fit its field (`1e400`, an
    /// integer past `Int.max`, `1.5` for an integer).
    static func isSyntaxError(_ error: DecodingError) -> Bool {
        if case .dataCorrupted(let context) = error { return context.codingPath.isEmpty }
        return false
    }

    /// The path of a number in `body` that made `decode` fail, found by
    /// putting `0` in place of the suspects one after another until the
    /// failure changes (at most `triesMax` decodes); nil if none did.
    /// Suspects: literals with a fraction or exponent, or over 18 digits,
    /// those out of every range first.
    static func numberNotFitting(_ body: [UInt8], triesMax: Int = 4, decode: ([UInt8]) throws -> Void) -> String? {
        let suspects = JSONBodyScanner.numbers(in: body, limit: 64) { literal in
            literal.count > 18 || literal.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        }
        let ordered = suspects.filter { isOutOfEveryRange(body[$0.range]) } + suspects.filter { !isOutOfEveryRange(body[$0.range]) }
        var patched = body
        // Each suspect becomes "0" padded with spaces: the other ranges stay valid.
        for suspect in ordered.prefix(triesMax) {
            patched.replaceSubrange(suspect.range, with: [UInt8(ascii: "0")] + Array(repeating: UInt8(ascii: " "), count: suspect.range.count - 1))
            do {
                try decode(patched)
                return suspect.path
            } catch let error as DecodingError where isSyntaxError(error) {
                continue
            } catch {
                return suspect.path
            }
        }
        return nil
    }

    /// A literal no Swift number type holds: past `Double`'s range, or an
    /// integer past 64 bits, or a non-zero that underflows to zero.
    private static func isOutOfEveryRange(_ literal: ArraySlice<UInt8>) -> Bool {
        let text = String(decoding: literal, as: UTF8.self)
        guard let value = Double(text) else { return false }
        if !value.isFinite { return true }
        let isInteger = !literal.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        if isInteger { return Int64(text) == nil && UInt64(text) == nil }
        let mantissa = literal.prefix { $0 != UInt8(ascii: "e") && $0 != UInt8(ascii: "E") }
        return value == 0 && mantissa.contains { $0 >= UInt8(ascii: "1") && $0 <= UInt8(ascii: "9") }
    }

    /// A decoding error as "field: rule", without the offending value.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            let rendered = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? snakeCase(key.stringValue) }
                .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
            return rendered.isEmpty ? "body" : rendered
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "\(parent == "body" ? "" : parent + ".")\(snakeCase(key.stringValue)) is required"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(describe(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must be \(describe(type)), not null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context.codingPath)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "the body does not match the expected shape"
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Int64.Type, is UInt32.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "of the expected type"
        }
    }

    static func snakeCase(_ key: String) -> String {
        var result = ""
        for character in key {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

public enum PercentEncoding {
    /// Decodes `%XX` escapes; nil for a malformed escape or invalid UTF-8.
    public static func decode<S: StringProtocol>(_ text: S, plusIsSpace: Bool = false) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            } else if plusIsSpace && byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

public enum HTTPStatus {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 421: return "Misdirected Request"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        case 507: return "Insufficient Storage"
        default: return "Status \(status)"
        }
    }
}
