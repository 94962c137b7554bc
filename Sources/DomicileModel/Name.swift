/// The name of something an operator defines: a feature, a contract, a
/// collection, an aggregate, a dataset. The same rules as a purpose, so names
/// are safe in paths, logs and metric labels.
public struct Name: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let lengthMax = 64
    public let rawValue: String

    /// 1-64 characters: lowercase letters, digits and `_`, starting with a
    /// letter. `what` names the thing in the error ("feature name").
    public init(_ rawValue: String, what: String) throws(ModelError) {
        guard Self.isValid(rawValue) else { throw .invalidName(what: what) }
        self.rawValue = rawValue
    }

    public static func isValid(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (1...lengthMax).contains(bytes.count), let first = bytes.first, ASCII.isLowercaseLetter(first) else { return false }
        return bytes.allSatisfy { ASCII.isLowercaseLetter($0) || ASCII.isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    public var description: String { rawValue }
    public static func < (lhs: Name, rhs: Name) -> Bool { lhs.rawValue < rhs.rawValue }
}
