/// Base64 (RFC 4648 section 4) and base64url without padding (section 5).
///
/// Hand-written because pids are formatted on the hot path of every
/// registration and lookup, and because Foundation's decoder accepts
/// non-canonical input that must not create two spellings of one pid.
public enum Base64 {
    // StaticStrings: their bytes are in the binary, so encoding needs no
    // lazy global initialization check per call.
    private static let standardAlphabetText: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    private static let urlAlphabetText: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    private static var standardAlphabet: UnsafePointer<UInt8> { standardAlphabetText.utf8Start }
    private static var urlAlphabet: UnsafePointer<UInt8> { urlAlphabetText.utf8Start }

    private static let standardReverse = reverseTable(standardAlphabet)
    private static let urlReverse = reverseTable(urlAlphabet)

    private static func reverseTable(_ alphabet: UnsafePointer<UInt8>) -> [UInt8] {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for index in 0..<64 { table[Int(alphabet[index])] = UInt8(index) }
        return table
    }

    /// Standard alphabet with `=` padding.
    public static func encode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        encode(bytes, alphabet: standardAlphabet, pad: true)
    }

    /// URL-safe alphabet, no padding.
    public static func encodeURL<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        encode(bytes, alphabet: urlAlphabet, pad: false)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        decode(text, reverse: standardReverse, padded: true)
    }

    public static func decodeURL(_ text: String) -> [UInt8]? {
        decode(text, reverse: urlReverse, padded: false)
    }

    private static func encode<Bytes: Collection<UInt8>>(_ bytes: Bytes, alphabet: UnsafePointer<UInt8>, pad: Bool) -> String {
        let input = Array(bytes)
        let outputCount = pad ? (input.count + 2) / 3 * 4 : (input.count * 4 + 2) / 3
        return String(unsafeUninitializedCapacity: outputCount) { output in
            input.withUnsafeBytes { encode(UnsafeRawBufferPointer($0), into: output, alphabet: alphabet, pad: pad) }
        }
    }

    /// The number of characters `encodeURL(_:into:)` writes for `byteCount` bytes.
    public static func encodedURLCount(byteCount: Int) -> Int { (byteCount * 4 + 2) / 3 }

    /// Writes the base64url form of `input` into `output` (which must hold
    /// `encodedURLCount(byteCount:)` bytes) and returns the count written.
    public static func encodeURL(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        encode(input, into: output, alphabet: urlAlphabet, pad: false)
    }

    private static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<UInt8>,
                               alphabet: UnsafePointer<UInt8>, pad: Bool) -> Int {
        do {
            var o = 0
            var i = 0
            while i + 3 <= input.count {
                let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                output[o] = alphabet[Int(n >> 18 & 63)]
                output[o + 1] = alphabet[Int(n >> 12 & 63)]
                output[o + 2] = alphabet[Int(n >> 6 & 63)]
                output[o + 3] = alphabet[Int(n & 63)]
                i += 3
                o += 4
            }
            let rest = input.count - i
            if rest > 0 {
                let n = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
                output[o] = alphabet[Int(n >> 18 & 63)]
                output[o + 1] = alphabet[Int(n >> 12 & 63)]
                o += 2
                if rest == 2 {
                    output[o] = alphabet[Int(n >> 6 & 63)]
                    o += 1
                } else if pad {
                    output[o] = UInt8(ascii: "=")
                    o += 1
                }
                if pad {
                    output[o] = UInt8(ascii: "=")
                    o += 1
                }
            }
            return o
        }
    }

    /// Strict: rejects characters outside the alphabet, wrong padding and
    /// non-zero trailing bits, so every byte string has exactly one spelling.
    private static func decode(_ text: String, reverse: [UInt8], padded: Bool) -> [UInt8]? {
        var input = Array(text.utf8)
        if padded {
            guard input.count % 4 == 0 else { return nil }
            var padding = 0
            while padding < 2, input.last == UInt8(ascii: "=") {
                input.removeLast()
                padding += 1
            }
        } else if input.count % 4 == 1 {
            return nil
        }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in input {
            let value = reverse[Int(byte)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero (canonical encoding).
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return output
    }
}

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var output = [UInt8]()
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 2 == 0 else { return nil }
        var output = [UInt8]()
        output.reserveCapacity(input.count / 2)
        var index = 0
        while index < input.count {
            guard let high = nibble(input[index]), let low = nibble(input[index + 1]) else { return nil }
            output.append(high << 4 | low)
            index += 2
        }
        return output
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
