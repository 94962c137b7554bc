/// The configured name of a node (`eu-1`): unique in the federation, stable
/// across restarts. A restart keeps the name and gets a new boot id.
public struct NodeName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let lengthMax = 64

    public let rawValue: String

    public init(_ rawValue: String) throws(ModelError) {
        let bytes = rawValue.utf8
        guard (1...Self.lengthMax).contains(bytes.count), let first = bytes.first,
              ASCII.isLowercaseLetter(first) || ASCII.isDigit(first),
              bytes.allSatisfy({ ASCII.isLowercaseLetter($0) || ASCII.isDigit($0) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F })
        else { throw .invalidNodeName }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    public static func < (lhs: NodeName, rhs: NodeName) -> Bool { lhs.rawValue < rhs.rawValue }
}
