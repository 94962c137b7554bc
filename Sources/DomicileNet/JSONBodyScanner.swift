/// One bounded pass over a JSON request body, for what Foundation's
/// `JSONDecoder` does not report:
/// - a key repeated within one object (the decoder keeps one of them
///   silently, so a proxy that reads the other could disagree with Domicile
///   about a field such as `country`). Keys are compared after unescaping
///   (`"a"` and `"\u0061"` are one key);
/// - nesting past `depthMax`;
/// - where the number literals are, so a number that does not fit its
///   field can be named (the decoder says only "not valid JSON").
///
/// Input that is not JSON is left for the decoder to refuse. Memory is
/// bounded by the input (the keys of the open objects) and `depthMax` frames.
public enum JSONBodyScanner {
    public enum Finding: Equatable, Sendable {
        /// The repeated key, as a path from the root (`identifier.kind`,
        /// `items[2].name`); a key that is not a plain name is shown as `…`.
        case duplicate(path: String)
        /// Objects and arrays nested deeper than `depthMax`.
        case tooDeep
    }

    public static let depthMaxDefault = 64

    private struct Frame {
        /// The keys seen so far; nil for an array.
        var keys: Set<[UInt8]>?
        var expectsKey: Bool
        /// The key whose value is being read (objects) or the element index (arrays).
        var currentKey: [UInt8] = []
        var index = 0
    }

    /// A duplicate key or excessive nesting, if any.
    public static func scan(_ bytes: [UInt8], depthMax: Int = depthMaxDefault) -> Finding? {
        walk(bytes, depthMax: depthMax) { _, _ in true }
    }

    /// The number literals of `bytes` that `isCandidate` selects, in order,
    /// with their paths (`k`, `vector[3]`), at most `limit`.
    static func numbers(in bytes: [UInt8], limit: Int, where isCandidate: (ArraySlice<UInt8>) -> Bool)
        -> [(range: Range<Int>, path: String)] {
        var found: [(range: Range<Int>, path: String)] = []
        _ = walk(bytes, depthMax: depthMaxDefault) { range, path in
            guard isCandidate(bytes[range]) else { return true }
            found.append((range, path()))
            return found.count < limit
        }
        return found
    }

    /// The walk behind both: `number` is told of each number literal (its
    /// range and, lazily, its path) and says whether to go on.
    private static func walk(_ bytes: [UInt8], depthMax: Int,
                             number: (Range<Int>, () -> String) -> Bool) -> Finding? {
        var stack: [Frame] = []
        var offset = 0
        while offset < bytes.count {
            switch bytes[offset] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < depthMax else { return .tooDeep }
                let isObject = bytes[offset] == UInt8(ascii: "{")
                stack.append(Frame(keys: isObject ? [] : nil, expectsKey: isObject))
                offset += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard !stack.isEmpty else { return nil }
                stack.removeLast()
                offset += 1
            case UInt8(ascii: ","):
                if let top = stack.indices.last {
                    if stack[top].keys != nil { stack[top].expectsKey = true } else { stack[top].index += 1 }
                }
                offset += 1
            case UInt8(ascii: ":"):
                if let top = stack.indices.last { stack[top].expectsKey = false }
                offset += 1
            case UInt8(ascii: "\""):
                guard let (string, end) = readString(bytes, from: offset + 1) else { return nil }
                offset = end
                guard let top = stack.indices.last, stack[top].keys != nil, stack[top].expectsKey else { continue }
                stack[top].expectsKey = false
                stack[top].currentKey = string
                if stack[top].keys?.insert(string).inserted == false { return .duplicate(path: path(of: stack)) }
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = offset
                while offset < bytes.count, isNumberByte(bytes[offset]) { offset += 1 }
                if !number(start..<offset, { path(of: stack) }) { return nil }
            default:
                offset += 1
            }
        }
        return nil
    }

    private static func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
             UInt8(ascii: "e"), UInt8(ascii: "E"):
            return true
        default:
            return false
        }
    }

    /// The path to the value being read: the current key of each object,
    /// the element index of each array.
    private static func path(of stack: [Frame]) -> String {
        var path = ""
        for frame in stack {
            if frame.keys == nil {
                path += "[\(frame.index)]"
                continue
            }
            let name = displayName(frame.currentKey)
            path += path.isEmpty ? name : "." + name
        }
        return path.isEmpty ? "body" : path
    }

    /// A key as it may appear in an error: a plain name (letters, digits,
    /// `_`, `-`, at most 64), else `…` (a key may hold anything a client sent).
    private static func displayName(_ key: [UInt8]) -> String {
        let plain = (1...64).contains(key.count) && key.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        return plain ? String(decoding: key, as: UTF8.self) : "…"
    }

    /// The unescaped UTF-8 bytes of the string whose content starts at
    /// `start`, and the offset after its closing quote; nil if malformed.
    static func readString(_ bytes: [UInt8], from start: Int) -> ([UInt8], Int)? {
        var result: [UInt8] = []
        var offset = start
        while offset < bytes.count {
            let byte = bytes[offset]
            switch byte {
            case UInt8(ascii: "\""):
                return (result, offset + 1)
            case UInt8(ascii: "\\"):
                guard offset + 1 < bytes.count else { return nil }
                let escaped = bytes[offset + 1]
                offset += 2
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): result.append(escaped)
                case UInt8(ascii: "b"): result.append(0x08)
                case UInt8(ascii: "f"): result.append(0x0C)
                case UInt8(ascii: "n"): result.append(0x0A)
                case UInt8(ascii: "r"): result.append(0x0D)
                case UInt8(ascii: "t"): result.append(0x09)
                case UInt8(ascii: "u"):
                    guard let (scalar, end) = readUnicodeEscape(bytes, from: offset) else { return nil }
                    result.append(contentsOf: Array(String(Character(scalar)).utf8))
                    offset = end
                default:
                    return nil
                }
            case 0x00..<0x20:
                return nil
            default:
                result.append(byte)
                offset += 1
            }
        }
        return nil
    }

    /// `XXXX` (after `\u`), or a surrogate pair `XXXX\uXXXX`; nil for a lone surrogate.
    private static func readUnicodeEscape(_ bytes: [UInt8], from start: Int) -> (Unicode.Scalar, Int)? {
        guard let high = hex4(bytes, at: start) else { return nil }
        if (0xD800...0xDBFF).contains(high) {
            guard start + 10 <= bytes.count, bytes[start + 4] == UInt8(ascii: "\\"), bytes[start + 5] == UInt8(ascii: "u"),
                  let low = hex4(bytes, at: start + 6), (0xDC00...0xDFFF).contains(low),
                  let scalar = Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)) else { return nil }
            return (scalar, start + 10)
        }
        guard let scalar = Unicode.Scalar(high) else { return nil }
        return (scalar, start + 4)
    }

    private static func hex4(_ bytes: [UInt8], at start: Int) -> UInt32? {
        guard start + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for byte in bytes[start..<(start + 4)] {
            guard let digit = ASCIIByte.hexValue(byte) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}
