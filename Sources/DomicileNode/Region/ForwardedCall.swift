import DomicileModel
import DomicileNet

/// A client's call a follower hands to its leader over the region channel,
/// and the leader's answer (docs/FORMATS.md, "Forwarded call"). The
/// follower has already read and admitted the request (token, body limit);
/// the leader runs it through the same routes and answers with the
/// response and its applied index, which the follower reaches before it
/// answers the client.
enum ForwardedCall {
    /// The first byte of a channel request: what it asks.
    static let requestKind: UInt8 = 1

    /// The most a node's HTTP server may be configured to take (http.header_count_max).
    static let headersCountMax = 10_000
    static let bytesMax = 64 << 20

    struct Request: Equatable {
        var method: String
        var target: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        var requestID: String

        static func == (a: Request, b: Request) -> Bool {
            a.method == b.method && a.target == b.target && a.body == b.body && a.requestID == b.requestID
                && a.headers.elementsEqual(b.headers) { $0 == $1 }
        }
    }

    enum Answer: Equatable {
        /// The leader ran the call: its response, and how far the leader had
        /// applied the log when it answered.
        case response(status: Int, headers: [(name: String, value: String)], body: [UInt8], appliedIndex: UInt64)
        /// The node asked is not (or not yet) a leader that may serve; the
        /// follower asks again once it knows a leader.
        case notLeader

        static func == (a: Answer, b: Answer) -> Bool {
            switch (a, b) {
            case (.notLeader, .notLeader): return true
            case let (.response(s1, h1, b1, i1), .response(s2, h2, b2, i2)):
                return s1 == s2 && b1 == b2 && i1 == i2 && h1.elementsEqual(h2) { $0 == $1 }
            default: return false
            }
        }
    }

    struct Malformed: Error {}

    static func encode(_ request: Request) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64 + request.body.count)
        writer.write(requestKind)
        writeText(request.method, to: &writer)
        writeText(request.target, to: &writer)
        writeText(request.requestID, to: &writer)
        writeHeaders(request.headers, to: &writer)
        writeBlob(request.body, to: &writer)
        return writer.bytes
    }

    static func decodeRequest(_ bytes: [UInt8]) throws(Malformed) -> Request {
        var reader = BinaryReader(bytes, what: "forwarded call")
        return try reading { () throws(ModelError) in
            guard try reader.readUInt8() == requestKind else { throw ModelError.invalidEncoding(what: "forwarded call") }
            let request = Request(method: try readText(&reader), target: try readText(&reader),
                                  headers: [], body: [], requestID: try readText(&reader))
            var complete = request
            complete.headers = try readHeaders(&reader)
            complete.body = try readBlob(&reader)
            guard reader.isAtEnd else { throw ModelError.invalidEncoding(what: "forwarded call") }
            return complete
        }
    }

    static func encode(_ answer: Answer) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64)
        switch answer {
        case .notLeader:
            writer.write(UInt8(0))
        case .response(let status, let headers, let body, let appliedIndex):
            writer.write(UInt8(1))
            writer.write(UInt16(clamping: status))
            writer.write(appliedIndex)
            writeHeaders(headers, to: &writer)
            writeBlob(body, to: &writer)
        }
        return writer.bytes
    }

    static func decodeAnswer(_ bytes: [UInt8]) throws(Malformed) -> Answer {
        var reader = BinaryReader(bytes, what: "forwarded answer")
        return try reading { () throws(ModelError) in
            switch try reader.readUInt8() {
            case 0:
                guard reader.isAtEnd else { throw ModelError.invalidEncoding(what: "forwarded answer") }
                return .notLeader
            case 1:
                let status = Int(try reader.readUInt16())
                guard (100...599).contains(status) else { throw ModelError.invalidEncoding(what: "forwarded answer") }
                let applied = try reader.readUInt64()
                let headers = try readHeaders(&reader)
                let body = try readBlob(&reader)
                guard reader.isAtEnd else { throw ModelError.invalidEncoding(what: "forwarded answer") }
                return .response(status: status, headers: headers, body: body, appliedIndex: applied)
            default:
                throw ModelError.invalidEncoding(what: "forwarded answer")
            }
        }
    }

    private static func reading<T>(_ body: () throws(ModelError) -> T) throws(Malformed) -> T {
        do { return try body() } catch { throw Malformed() }
    }

    private static func writeText(_ text: String, to writer: inout BinaryWriter) { writeBlob(Array(text.utf8), to: &writer) }

    private static func writeBlob(_ bytes: [UInt8], to writer: inout BinaryWriter) {
        writer.write(UInt32(bytes.count))
        writer.write(raw: bytes)
    }

    private static func writeHeaders(_ headers: [(name: String, value: String)], to writer: inout BinaryWriter) {
        let kept = headers.prefix(headersCountMax)
        writer.write(UInt16(kept.count))
        for field in kept {
            writeText(field.name, to: &writer)
            writeText(field.value, to: &writer)
        }
    }

    private static func readBlob(_ reader: inout BinaryReader) throws(ModelError) -> [UInt8] {
        let count = Int(try reader.readUInt32())
        guard count <= bytesMax else { throw .invalidEncoding(what: "forwarded call") }
        return try reader.readBytes(count)
    }

    private static func readText(_ reader: inout BinaryReader) throws(ModelError) -> String {
        guard let text = String(validating: try readBlob(&reader), as: UTF8.self) else { throw .invalidEncoding(what: "forwarded call") }
        return text
    }

    private static func readHeaders(_ reader: inout BinaryReader) throws(ModelError) -> [(name: String, value: String)] {
        let count = Int(try reader.readUInt16())
        guard count <= headersCountMax else { throw .invalidEncoding(what: "forwarded call") }
        var headers: [(name: String, value: String)] = []
        for _ in 0..<count { headers.append((try readText(&reader), try readText(&reader))) }
        return headers
    }
}
