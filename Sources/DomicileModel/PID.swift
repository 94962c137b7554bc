/// A pseudonymous subject id: `psn:v{keyVersion}:{region}:{base64url(HMAC-SHA256)}`.
///
/// The home region is part of the pid so that any node can route a request
/// without a directory. The digest is the HMAC of the normalized identifier
/// under the region's pseudonymization key of that version; a pid reveals
/// nothing about the identifier to anyone without that key.
public struct PID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let digestByteCount = 32
    /// `psn:v` + up to 10 digits + `:` + region + `:` + 43 characters.
    public static let textBytesMax = 5 + 10 + 1 + RegionID.lengthMax + 1 + 43

    public let keyVersion: UInt32
    public let region: RegionID
    /// The canonical text form. Pids are compared, hashed, stored and printed
    /// far more often than their digest is needed, so the text is what is kept.
    public let rawValue: String

    public init(keyVersion: UInt32, region: RegionID, digest: [UInt8]) {
        precondition(digest.count == Self.digestByteCount, "a pid digest is an HMAC-SHA256 output")
        self = digest.withUnsafeBytes { Self(prefix: Self.prefix(keyVersion: keyVersion, region: region), digest: $0) }
    }

    /// Builds a pid from its precomputed `psn:v{n}:{region}:` prefix and the
    /// digest, writing the text in one allocation (the pseudonymization hot path).
    public init(prefix: Prefix, digest: UnsafeRawBufferPointer) {
        precondition(digest.count == Self.digestByteCount, "a pid digest is an HMAC-SHA256 output")
        keyVersion = prefix.keyVersion
        region = prefix.region
        let digestCount = Base64.encodedURLCount(byteCount: Self.digestByteCount)
        rawValue = String(unsafeUninitializedCapacity: prefix.bytes.count + digestCount) { output in
            prefix.bytes.withUnsafeBufferPointer { bytes in
                output.baseAddress!.update(from: bytes.baseAddress!, count: bytes.count)
            }
            return prefix.bytes.count
                + Base64.encodeURL(digest, into: UnsafeMutableBufferPointer(rebasing: output[prefix.bytes.count...]))
        }
    }

    /// The `psn:v{n}:{region}:` part shared by every pid of one key version.
    public struct Prefix: Sendable {
        public let keyVersion: UInt32
        public let region: RegionID
        let bytes: [UInt8]
    }

    public static func prefix(keyVersion: UInt32, region: RegionID) -> Prefix {
        precondition(keyVersion > 0, "key versions start at 1")
        return Prefix(keyVersion: keyVersion, region: region, bytes: Array("psn:v\(keyVersion):\(region.rawValue):".utf8))
    }

    /// The HMAC digest, decoded from the text form.
    public var digest: [UInt8] {
        let encoded = rawValue.utf8.split(separator: UInt8(ascii: ":")).last.map { String(decoding: $0, as: UTF8.self) } ?? ""
        guard let digest = Base64.decodeURL(encoded) else { preconditionFailure("a constructed pid always has a valid digest") }
        return digest
    }

    /// Parses the canonical text form; anything else is `invalidPID`.
    public init(parsing text: String) throws(ModelError) {
        guard text.utf8.count <= Self.textBytesMax else { throw .invalidPID(reason: "too long") }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "psn" else {
            throw .invalidPID(reason: "expected psn:v{n}:{region}:{digest}")
        }
        let versionText = parts[1]
        guard versionText.first == "v", versionText.count >= 2,
              versionText.dropFirst().first != "0",
              versionText.dropFirst().allSatisfy({ $0.isASCII && $0.isNumber }),
              let version = UInt32(versionText.dropFirst()), version > 0 else {
            throw .invalidPID(reason: "bad key version")
        }
        guard let region = try? RegionID(String(parts[2])) else {
            throw .invalidPID(reason: "bad region")
        }
        guard let digest = Base64.decodeURL(String(parts[3])), digest.count == Self.digestByteCount else {
            throw .invalidPID(reason: "bad digest")
        }
        self.init(keyVersion: version, region: region, digest: digest)
    }

    public var description: String { rawValue }

    public static func == (lhs: PID, rhs: PID) -> Bool { lhs.rawValue == rhs.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
    public static func < (lhs: PID, rhs: PID) -> Bool { lhs.rawValue < rhs.rawValue }
}
