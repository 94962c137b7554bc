/// Pieces of HTTP/1.1 message framing shared by the request parser (server)
/// and the response parser (client): CRLF lines, field lines, chunked bodies.

/// Reads CRLF-terminated lines from an input buffer, remembering how far it
/// has already searched so a line arriving in many reads is scanned once.
struct LineReader {
    enum Line {
        case line(ArraySlice<UInt8>)
        case failure(HTTPParseError)
    }

    private var scanOffset = 0

    var hasPartialLine: Bool { scanOffset > 0 }

    /// The next line without its CRLF, consumed from `input`; nil if it is not
    /// complete yet. A line longer than `limit` fails with `onOverflow`; a
    /// line ending in a bare LF fails with 400.
    mutating func next(_ input: inout InputBuffer, limit: Int, onOverflow: HTTPParseError) -> Line? {
        let searchLimit = max(limit, 0) + 2
        guard let lineFeed = input.firstLineFeed(from: scanOffset, limit: searchLimit) else {
            if input.count >= searchLimit { return .failure(onOverflow) }
            scanOffset = input.count
            return nil
        }
        scanOffset = 0
        guard lineFeed > 0, input[lineFeed - 1] == 0x0D else {
            return .failure(.bad("bare_line_feed", "lines must end with CRLF"))
        }
        let line = input.slice(0..<(lineFeed - 1))
        input.consume(lineFeed + 1)
        return .line(line)
    }
}

enum FieldLine {
    /// Validates one field line (RFC 9112 section 5) and appends it.
    static func parse(_ line: ArraySlice<UInt8>, into headers: inout HTTPHeaders) -> HTTPParseError? {
        guard let first = line.first else { return .bad("bad_header", "empty field line") }
        if first == 0x20 || first == 0x09 {
            return .bad("obsolete_line_folding", "obs-fold (a field line starting with whitespace) is not accepted")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            return .bad("bad_header", "a field line has no colon")
        }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty, name.allSatisfy(ASCIIByte.isToken) else {
            return .bad("bad_header", "a field name is not a token (whitespace before the colon is not allowed)")
        }
        var value = line[(colon + 1)...]
        while let head = value.first, head == 0x20 || head == 0x09 { value.removeFirst() }
        while let tail = value.last, tail == 0x20 || tail == 0x09 { value.removeLast() }
        guard value.allSatisfy(ASCIIByte.isFieldValue) else {
            return .bad("bad_header", "a field value has control characters")
        }
        let lowered = String(unsafeUninitializedCapacity: name.count) { buffer in
            for (offset, byte) in name.enumerated() { buffer[offset] = ASCIIByte.lower(byte) }
            return name.count
        }
        headers.appendParsed(name: lowered, value: String(decoding: value, as: UTF8.self))
        return nil
    }
}

/// Decodes a chunked body (RFC 9112 section 7.1) incrementally: chunk-size
/// lines (extensions ignored), data, CRLF, the last chunk and a trailer
/// section that is validated and dropped.
struct ChunkedBodyReader {
    enum Progress {
        case needMore
        case done
        case failure(HTTPParseError)
    }

    private enum Phase {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailers
    }

    private var phase = Phase.size
    private var lines = LineReader()
    private var trailerBytes = 0
    let limits: HTTPParseLimits
    /// The running total of chunk data may not pass this.
    let bodyBytesMax: Int

    init(limits: HTTPParseLimits, bodyBytesMax: Int? = nil) {
        self.limits = limits
        self.bodyBytesMax = bodyBytesMax ?? limits.bodyBytesMax
    }

    mutating func read(_ input: inout InputBuffer, into body: inout [UInt8]) -> Progress {
        while true {
            switch phase {
            case .size:
                guard let line = lines.next(&input, limit: limits.chunkLineBytesMax, onOverflow: .bad(
                    "bad_chunk", "a chunk-size line exceeds \(limits.chunkLineBytesMax) bytes")) else { return .needMore }
                switch line {
                case .failure(let error): return .failure(error)
                case .line(let bytes):
                    switch Self.chunkSize(bytes, room: bodyBytesMax - body.count, limit: bodyBytesMax) {
                    case .failure(let error): return .failure(error)
                    case .success(0): phase = .trailers
                    case .success(let size): phase = .data(remaining: size)
                    }
                }
            case .data(let remaining):
                guard !input.isEmpty else { return .needMore }
                let available = min(remaining, input.count)
                body.append(contentsOf: input.slice(0..<available))
                input.consume(available)
                phase = available == remaining ? .dataEnd : .data(remaining: remaining - available)
            case .dataEnd:
                guard input.count >= 2 else { return .needMore }
                guard input[0] == 0x0D && input[1] == 0x0A else {
                    return .failure(.bad("bad_chunk", "chunk data is not followed by CRLF"))
                }
                input.consume(2)
                phase = .size
            case .trailers:
                guard let line = lines.next(&input, limit: limits.headerBytesMax - trailerBytes, onOverflow: HTTPParseError(
                    status: 431, code: "header_too_large", detail: "the trailer section is too large")) else { return .needMore }
                switch line {
                case .failure(let error): return .failure(error)
                case .line(let bytes):
                    if bytes.isEmpty { return .done }
                    trailerBytes += bytes.count + 2
                    var ignored = HTTPHeaders()
                    if let error = FieldLine.parse(bytes, into: &ignored) { return .failure(error) }
                }
            }
        }
    }

    private static func chunkSize(_ line: ArraySlice<UInt8>, room: Int, limit: Int) -> Result<Int, HTTPParseError> {
        var size = 0
        var digits = 0
        var index = line.startIndex
        while index < line.endIndex, let value = ASCIIByte.hexValue(line[index]) {
            guard digits < 15 else { return .failure(.bad("bad_chunk", "the chunk size is too long")) }
            size = size << 4 | Int(value)
            digits += 1
            index += 1
        }
        guard digits > 0 else { return .failure(.bad("bad_chunk", "the chunk size is not hexadecimal")) }
        // What may follow: optional whitespace, then chunk extensions (";name[=value]"), ignored.
        let rest = line[index...].drop { $0 == 0x20 || $0 == 0x09 }
        if let first = rest.first {
            guard first == UInt8(ascii: ";"), rest.allSatisfy(ASCIIByte.isFieldValue) else {
                return .failure(.bad("bad_chunk", "unexpected characters after the chunk size"))
            }
        }
        guard size <= room else {
            return .failure(HTTPParseError(status: 413, code: "body_too_large", detail: "the body exceeds \(limit) bytes"))
        }
        return .success(size)
    }
}
