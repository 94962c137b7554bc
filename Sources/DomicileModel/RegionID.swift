/// A jurisdiction with its own nodes, keys and data, such as `eu` or `us`.
///
/// Region ids appear inside pids and on the wire, so they are kept short and
/// plain: 1 to 16 characters, lowercase ASCII letters and digits, starting with
/// a letter.
public struct RegionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let lengthMax = 16

    public let rawValue: String

    public init(_ rawValue: String) throws(ModelError) {
        guard Self.isValid(rawValue) else { throw .invalidRegion }
        self.rawValue = rawValue
    }

    public static func isValid(_ candidate: String) -> Bool {
        let bytes = candidate.utf8
        guard (1...lengthMax).contains(bytes.count), let first = bytes.first,
              ASCII.isLowercaseLetter(first) else { return false }
        return bytes.allSatisfy { ASCII.isLowercaseLetter($0) || ASCII.isDigit($0) }
    }

    public var description: String { rawValue }

    public static func < (lhs: RegionID, rhs: RegionID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Byte classes for the hand-written parsers (UTF-8 bytes, ASCII only).
public enum ASCII {
    public static func isLowercaseLetter(_ byte: UInt8) -> Bool { byte >= 0x61 && byte <= 0x7A }
    public static func isUppercaseLetter(_ byte: UInt8) -> Bool { byte >= 0x41 && byte <= 0x5A }
    public static func isLetter(_ byte: UInt8) -> Bool { isLowercaseLetter(byte) || isUppercaseLetter(byte) }
    public static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    public static func isAlphanumeric(_ byte: UInt8) -> Bool { isLetter(byte) || isDigit(byte) }
    public static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x0B || byte == 0x0C
    }
}
