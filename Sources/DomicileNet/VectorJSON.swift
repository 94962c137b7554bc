import CLinux

/// A fast path for the request bodies that carry vectors: Foundation's
/// `JSONDecoder` spends about 0.7 µs on each number of an array it decodes
/// into `[Double]` (a `Decodable` call, boxes and reference counting per
/// element), which made reading a batch of 384-dimension vectors as costly
/// as storing them (docs/BENCHMARKS.md, "Loading through the API").
///
/// Each reader accepts exactly one shape, in one bounded pass, and answers
/// nil for anything else: another key, a key twice, an escape or a
/// non-ASCII byte in a string, a number outside JSON's grammar or a
/// double's normal range, a literal over 63 bytes. The caller then decodes
/// the body with `JSONDecoder`, which accepts or refuses it in its own
/// words; so this path changes nothing that is accepted or refused, only
/// how fast. That is the property it is fuzzed for against `JSONDecoder`
/// (`HTTPParserFuzzing.checkJSON`, Tests/Fuzz/run http).
public enum VectorJSON {
    /// One object of a list: its text member and its numbers.
    public struct Entry: Equatable, Sendable {
        public let text: String
        public let numbers: [Double]
    }

    /// `{"<key>": [number, …]}`, the numbers; nil for any other body.
    public static func numbers(in body: [UInt8], key: String) -> [Double]? {
        let key = Array(key.utf8)
        return body.withUnsafeBufferPointer { bytes in
            var reader = Reader(bytes: bytes)
            var numbers: [Double] = []
            guard reader.take(UInt8(ascii: "{")), reader.key(key), reader.numbers(into: &numbers), reader.take(UInt8(ascii: "}")),
                  reader.atEnd else { return nil }
            return numbers
        }
    }

    /// `{"<list>": [{"<text>": "…", "<numbers>": [number, …]}, …]}` (the two
    /// members of each object in either order), the objects in order; nil
    /// for any other body.
    public static func entries(in body: [UInt8], list: String, text: String, numbers: String) -> [Entry]? {
        let listKey = Array(list.utf8), textKey = Array(text.utf8), numbersKey = Array(numbers.utf8)
        return body.withUnsafeBufferPointer { bytes -> [Entry]? in
            var reader = Reader(bytes: bytes)
            var entries: [Entry] = []
            guard reader.take(UInt8(ascii: "{")), reader.key(listKey), reader.take(UInt8(ascii: "[")) else { return nil }
            if !reader.take(UInt8(ascii: "]")) {
                repeat {
                    guard let entry = reader.entry(textKey: textKey, numbersKey: numbersKey) else { return nil }
                    entries.append(entry)
                } while reader.take(UInt8(ascii: ","))
                guard reader.take(UInt8(ascii: "]")) else { return nil }
            }
            guard reader.take(UInt8(ascii: "}")), reader.atEnd else { return nil }
            return entries
        }
    }

    /// A cursor over the body; every method skips the whitespace before
    /// what it reads and, when it fails, the whole read is abandoned.
    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var offset = 0

        var atEnd: Bool {
            mutating get {
                skipSpace()
                return offset == bytes.count
            }
        }

        mutating func skipSpace() {
            while offset < bytes.count {
                switch bytes[offset] {
                case 0x20, 0x09, 0x0A, 0x0D: offset += 1
                default: return
                }
            }
        }

        /// Consumes `byte` if it comes next.
        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard offset < bytes.count, bytes[offset] == byte else { return false }
            offset += 1
            return true
        }

        /// `"<expected>":`.
        mutating func key(_ expected: [UInt8]) -> Bool {
            guard let range = plainString(), bytes[range].elementsEqual(expected) else { return false }
            return take(UInt8(ascii: ":"))
        }

        /// A string of printable ASCII without escapes: its bytes' range.
        mutating func plainString() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = offset
            while offset < bytes.count {
                let byte = bytes[offset]
                if byte == UInt8(ascii: "\"") {
                    offset += 1
                    return start..<(offset - 1)
                }
                guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") else { return nil }
                offset += 1
            }
            return nil
        }

        /// `{"<text>": "…", "<numbers>": […]}`, members in either order, each once.
        mutating func entry(textKey: [UInt8], numbersKey: [UInt8]) -> Entry? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var text: String?, numbers: [Double]?
            repeat {
                let mark = offset
                if text == nil, key(textKey) {
                    guard let range = plainString() else { return nil }
                    text = String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                } else {
                    offset = mark
                    var values: [Double] = []
                    guard numbers == nil, key(numbersKey), self.numbers(into: &values) else { return nil }
                    numbers = values
                }
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "}")), let text, let numbers else { return nil }
            return Entry(text: text, numbers: numbers)
        }

        /// `[number, …]`, appended to `numbers`.
        mutating func numbers(into numbers: inout [Double]) -> Bool {
            guard take(UInt8(ascii: "[")) else { return false }
            if take(UInt8(ascii: "]")) { return true }
            repeat {
                guard let value = number() else { return false }
                numbers.append(value)
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]"))
        }

        /// A number literal as JSON's grammar has it
        /// (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`), as the nearest double.
        mutating func number() -> Double? {
            skipSpace()
            let start = offset
            if peek(UInt8(ascii: "-")) { offset += 1 }
            let zero = peek(UInt8(ascii: "0"))
            if zero {
                offset += 1
            } else if digits() == 0 {
                return nil
            }
            let fraction = peek(UInt8(ascii: "."))
            if fraction {
                offset += 1
                guard digits() > 0 else { return nil }
            }
            if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
                // Foundation refuses `0e5` (not `0e+5`, `-0e5` nor `0.0e5`):
                // a zero with an exponent and no fraction is left to it.
                guard !(zero && !fraction) else { return nil }
                offset += 1
                if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { offset += 1 }
                guard digits() > 0 else { return nil }
            }
            var value = 0.0
            guard domicile_parse_json_double(bytes.baseAddress! + start, offset - start, &value) == 1 else { return nil }
            return value
        }

        func peek(_ byte: UInt8) -> Bool { offset < bytes.count && bytes[offset] == byte }

        /// Consumes decimal digits; how many.
        mutating func digits() -> Int {
            let start = offset
            while offset < bytes.count, bytes[offset] >= 0x30, bytes[offset] <= 0x39 { offset += 1 }
            return offset - start
        }
    }
}
