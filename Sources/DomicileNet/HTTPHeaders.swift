/// Header fields in arrival order. Names are matched case-insensitively;
/// the parser stores them lower-cased, so lookups compare lower-case names.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { add(name, value) }
    }

    public var count: Int { fields.count }

    /// The first value of `name`.
    public subscript(name: String) -> String? {
        let lowered = name.lowercased()
        return fields.first { $0.name == lowered }?.value
    }

    public func values(_ name: String) -> [String] {
        values(lowercased: name.lowercased())
    }

    /// `values(_:)` for a name known to be lower-case already (the parser's
    /// own lookups), skipping the lower-casing.
    func values(lowercased name: String) -> [String] {
        var found: [String] = []
        for field in fields where field.name == name { found.append(field.value) }
        return found
    }

    func first(lowercased name: String) -> String? {
        for field in fields where field.name == name { return field.value }
        return nil
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public mutating func add(_ name: String, _ value: String) {
        fields.append((name.lowercased(), value))
    }

    /// Replaces every value of `name` with one.
    public mutating func set(_ name: String, _ value: String) {
        let lowered = name.lowercased()
        fields.removeAll { $0.name == lowered }
        fields.append((lowered, value))
    }

    mutating func appendParsed(name: String, value: String) {
        fields.append((name, value))
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    /// Whether a comma-separated header (Connection, Expect…) lists `token`.
    public func hasToken(_ token: String, in name: String) -> Bool {
        values(lowercased: name.lowercased()).contains { value in
            value.split(separator: ",").contains { $0.trimmingSpaces().caseInsensitiveEquals(token) }
        }
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }

    func caseInsensitiveEquals(_ other: String) -> Bool {
        self.utf8.count == other.utf8.count && zip(self.utf8, other.utf8).allSatisfy { ASCIIByte.lower($0) == ASCIIByte.lower($1) }
    }
}

enum ASCIIByte {
    static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 32 : byte }

    /// `tchar` of RFC 9110 section 5.6.2: the characters of a token.
    static let tokenTable: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(byte)] = true }
        for byte in "!#$%&'*+-.^_`|~".utf8 { table[Int(byte)] = true }
        return table
    }()

    static func isToken(_ byte: UInt8) -> Bool { tokenTable[Int(byte)] }

    /// field-vchar, SP and HTAB (RFC 9110 section 5.5), obs-text included.
    static func isFieldValue(_ byte: UInt8) -> Bool { byte == 0x09 || byte >= 0x20 && byte != 0x7F }

    /// VCHAR: what a request-target may contain.
    static func isVisible(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7F }
}
