import DomicileModel

/// Minimizing transforms for event fields, applied before anything is
/// stored: the exact value never reaches the database.
public enum Transform: String, Sendable, Codable, CaseIterable {
    /// A timestamp to its UTC day, `2026-11-22`.
    case bucketDay = "bucket_day"
    /// A timestamp to its UTC hour, `2026-11-22T10:00Z`.
    case bucketHour = "bucket_hour"
    /// An IP address to its network: IPv4 /24, IPv6 /48.
    case ipPrefix = "ip_prefix"
    /// A location (`DE-BE`, `DE/Berlin/10115`, `de`) to its ISO 3166-1 country.
    case coarseGeo = "coarse_geo"
    /// Accepted, validated, not stored.
    case drop

    public enum Failure: Error, Equatable, Sendable {
        case notATimestamp
        case notAnIPAddress
        case notALocation
    }

    /// The minimized value; nil for `drop`.
    public func apply(to value: String) throws(Failure) -> String? {
        switch self {
        case .bucketDay, .bucketHour:
            guard let timestamp = try? Timestamp(rfc3339: value) else { throw .notATimestamp }
            let text = timestamp.rfc3339
            return self == .bucketDay ? String(text.prefix(10)) : String(text.prefix(13)) + ":00Z"
        case .ipPrefix:
            return try Self.ipPrefix(value)
        case .coarseGeo:
            let head = value.prefix { $0.isLetter }
            guard head.count == 2, let country = try? CountryCode(head.uppercased()) else { throw .notALocation }
            let rest = value.dropFirst(2)
            guard rest.isEmpty || rest.first == "-" || rest.first == "/" else { throw .notALocation }
            return country.rawValue
        case .drop:
            return nil
        }
    }

    static func ipPrefix(_ text: String) throws(Failure) -> String {
        if text.contains(".") && !text.contains(":") {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4, let octets = Optional(parts.compactMap { UInt8($0) }), octets.count == 4,
                  parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) }) else { throw .notAnIPAddress }
            return "\(octets[0]).\(octets[1]).\(octets[2]).0/24"
        }
        guard let groups = expandIPv6(text) else { throw .notAnIPAddress }
        return groups.prefix(3).map { String($0, radix: 16) }.joined(separator: ":") + "::/48"
    }

    /// The eight 16-bit groups of an IPv6 address (`::` expanded), or nil.
    static func expandIPv6(_ text: String) -> [UInt16]? {
        guard text.contains(":"), text.utf8.count <= 39 else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            var result: [UInt16] = []
            for field in fields {
                guard (1...4).contains(field.count), let value = UInt16(field, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 8 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
        return head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
    }
}
