import Foundation

/// Reads of a configuration object's values, each checked for its type and
/// range, refusing with an error naming the field's path
/// (`config limits.batch_receipts_max: must be in 1...100000`). A key that
/// is absent or `null` reads as nil: the field's default applies.
extension KeyedDecodingContainer {
    typealias Invalid = NodeConfiguration.Invalid

    func invalid(_ key: Key, _ reason: String) -> Invalid {
        Invalid(field: ConfigurationKey.path(codingPath + [key]), reason: reason)
    }

    /// Decodes `key`'s value, or nil when it is absent or null; a value of another type is refused with `reason`.
    private func value<T: Decodable>(_ type: T.Type, _ key: Key, otherwise reason: String) throws(Invalid) -> T? {
        do { return try decodeIfPresent(type, forKey: key) } catch { throw invalid(key, reason) }
    }

    func string(_ key: Key) throws(Invalid) -> String? {
        try value(String.self, key, otherwise: "must be a string")
    }

    /// A value written as a string and parsed by `make` (an address, a name); `make`'s error is the reason.
    func parsed<T>(_ key: Key, _ make: (String) throws -> T) throws(Invalid) -> T? {
        guard let text = try string(key) else { return nil }
        do { return try make(text) } catch { throw invalid(key, "\(error)") }
    }

    /// A string that must be present and not empty, made into a `T` by `make` (a path, a name).
    func required<T>(_ key: Key, _ make: (String) throws -> T) throws(Invalid) -> T {
        guard let text = try string(key) else { throw invalid(key, "is required") }
        guard !text.isEmpty else { throw invalid(key, "must not be empty") }
        do { return try make(text) } catch { throw invalid(key, "\(error)") }
    }

    /// An integer (`1000` or `1e3`, not `1.5`, `"1000"` or `true`) within `range`.
    func integer(_ key: Key, in range: ClosedRange<Int>) throws(Invalid) -> Int? {
        guard let number = try value(Int.self, key, otherwise: "must be an integer") else { return nil }
        guard range.contains(number) else { throw invalid(key, "must be in \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    /// A number (not `"1"` or `true`) within `range`.
    func number(_ key: Key, in range: ClosedRange<Double>) throws(Invalid) -> Double? {
        guard let number = try value(Double.self, key, otherwise: "must be a number") else { return nil }
        guard range.contains(number) else { throw invalid(key, "must be in \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    /// `true` or `false` (not `1` or `0`).
    func flag(_ key: Key) throws(Invalid) -> Bool? {
        try value(Bool.self, key, otherwise: "must be true or false")
    }

    func strings(_ key: Key) throws(Invalid) -> [String] {
        try value([String].self, key, otherwise: "must be an array of strings") ?? []
    }

    /// A nested object read by its own `init(from:)`, which names the fields inside it.
    func object<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try decode(type, forKey: key)
    }

    /// One of `T`'s raw values; another string is refused with `reason`.
    func choice<T: RawRepresentable<String>>(_ type: T.Type, _ key: Key, otherwise reason: String) throws(Invalid) -> T? {
        guard let text = try string(key) else { return nil }
        guard let value = T(rawValue: text) else { throw invalid(key, reason) }
        return value
    }

    /// A nested object whose keys are names the operator chooses.
    func members(_ key: Key) throws(Invalid) -> KeyedDecodingContainer<ConfigurationKey>? {
        do {
            guard contains(key), try !decodeNil(forKey: key) else { return nil }
            return try nestedContainer(keyedBy: ConfigurationKey.self, forKey: key)
        } catch {
            throw invalid(key, "must be an object")
        }
    }

    /// A nested object's fields, refusing any key that `Keys` does not name.
    func fields<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type, _ key: Key) throws(Invalid) -> KeyedDecodingContainer<Keys>? {
        guard let members = try members(key) else { return nil }
        try members.refuseKeys(besides: keys)
        do { return try nestedContainer(keyedBy: keys, forKey: key) } catch { throw invalid(key, "must be an object") }
    }
}

extension KeyedDecodingContainer<ConfigurationKey> {
    /// Refuses the first key (in order) that `Keys` does not name: a
    /// misspelt key must not silently fall back to a default.
    func refuseKeys<Keys: CodingKey & CaseIterable>(besides _: Keys.Type) throws(Invalid) {
        let known = Set(Keys.allCases.map(\.stringValue))
        if let unknown = allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw invalid(ConfigurationKey(stringValue: unknown), "unknown key")
        }
    }
}

extension Decoder {
    /// The object this decoder reads, refusing keys that `Keys` does not name.
    func configurationFields<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws(NodeConfiguration.Invalid)
        -> KeyedDecodingContainer<Keys> {
        do {
            try container(keyedBy: ConfigurationKey.self).refuseKeys(besides: keys)
            return try container(keyedBy: keys)
        } catch let error as NodeConfiguration.Invalid {
            throw error
        } catch {
            throw codingPath.isEmpty ? .init(field: "(file)", reason: "not a JSON object")
                : .init(field: ConfigurationKey.path(codingPath), reason: "must be an object")
        }
    }
}
