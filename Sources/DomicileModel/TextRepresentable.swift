/// A value with one canonical text form, validated when parsed: region ids,
/// node names, purposes, country codes, pids, timestamps. It is encoded as
/// that text in JSON, and a value that does not parse fails decoding with
/// the rule it broke (never the value).
public protocol TextRepresentable: Codable {
    init(text: String) throws
    var text: String { get }
}

extension TextRepresentable {
    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(text: raw) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

extension RegionID: TextRepresentable {
    public init(text: String) throws { try self.init(text) }
    public var text: String { rawValue }
}

extension NodeName: TextRepresentable {
    public init(text: String) throws { try self.init(text) }
    public var text: String { rawValue }
}

extension Purpose: TextRepresentable {
    public init(text: String) throws { try self.init(text) }
    public var text: String { rawValue }
}

extension CountryCode: TextRepresentable {
    public init(text: String) throws { try self.init(text) }
    public var text: String { rawValue }
}

extension PID: TextRepresentable {
    public init(text: String) throws { try self.init(parsing: text) }
    public var text: String { rawValue }
}

extension Timestamp: TextRepresentable {
    public init(text: String) throws { try self.init(rfc3339: text) }
    public var text: String { rfc3339 }
}

/// Keys a JSON object where it keys a dictionary (`limits.privacy_label_caps`).
extension Name: TextRepresentable, CodingKeyRepresentable {
    public init(text: String) throws { try self.init(text, what: "name") }
    public var text: String { rawValue }
    public var codingKey: any CodingKey { rawValue.codingKey }
    public init?<T: CodingKey>(codingKey: T) { try? self.init(text: codingKey.stringValue) }
}
