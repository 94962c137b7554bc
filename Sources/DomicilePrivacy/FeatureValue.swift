import DomicileModel

/// The types a feature can have.
public enum FeatureType: String, Sendable, Codable, CaseIterable {
    case number, string, bool
}

/// A feature value: what subjects' features hold, typed.
public enum FeatureValue: Sendable, Equatable {
    /// The longest string value: features are attributes, not documents.
    public static let stringBytesMax = 1_024

    case number(Double)
    case string(String)
    case bool(Bool)

    public var type: FeatureType {
        switch self {
        case .number: return .number
        case .string: return .string
        case .bool: return .bool
        }
    }

    /// Bytes for sealing: a type tag then the value.
    public var encoded: [UInt8] {
        var writer = BinaryWriter(capacity: 16)
        switch self {
        case .number(let number):
            writer.write(UInt8(1))
            writer.write(number.bitPattern)
        case .string(let text):
            writer.write(UInt8(2))
            writer.write(raw: Array(text.utf8))
        case .bool(let flag):
            writer.write(UInt8(3))
            writer.write(UInt8(flag ? 1 : 0))
        }
        return writer.bytes
    }

    public init?(encoded bytes: [UInt8]) {
        guard let tag = bytes.first else { return nil }
        switch tag {
        case 1 where bytes.count == 9:
            var reader = BinaryReader(bytes, what: "feature value")
            _ = try? reader.readUInt8()
            guard let bits = try? reader.readUInt64() else { return nil }
            self = .number(Double(bitPattern: bits))
        case 2:
            guard let text = String(validating: bytes.dropFirst(), as: UTF8.self) else { return nil }
            self = .string(text)
        case 3 where bytes.count == 2:
            self = .bool(bytes[1] == 1)
        default:
            return nil
        }
    }
}
