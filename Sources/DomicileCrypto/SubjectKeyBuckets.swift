import DomicileModel

/// One version of one bucket's key-encryption key.
public struct BucketKey: Sendable {
    public let bucket: UInt16
    public let version: UInt32
    /// Unix seconds.
    public let createdAt: Int64
    public let material: SecretBytes

    public init(bucket: UInt16, version: UInt32, createdAt: Int64, material: SecretBytes) {
        self.bucket = bucket
        self.version = version
        self.createdAt = createdAt
        self.material = material
    }

    public var aesKey: AESGCMKey { try! AESGCMKey(version: version, secret: material) }
}

/// The key-encryption keys that wrap subject keys (docs/DECISIONS.md,
/// "Subject keys under bucket keys"). A pid falls in one of `count` buckets;
/// each bucket has a current version, and while it is being rotated, older
/// versions that still wrap committed rows. They live only in the keyring:
/// destroying a version is what makes every copy of what it wrapped unreadable.
///
/// Bucket keys are region keys: every node of a region starts from the same
/// version 1 of each bucket, and a rotation is a one-way ratchet, not a new
/// random key (`ratchet`), so every node that holds version v derives the same
/// v+1 and no key ever travels (docs/DECISIONS.md, "Bucket keys: region-wide,
/// rotated by a one-way ratchet").
public struct SubjectKeyBuckets: Sendable {
    /// 4096 buckets: about 244 subject keys to re-wrap per erasure at 1M
    /// subjects, a keyring of about 190 KB (docs/DECISIONS.md).
    public static let defaultCount = 4096
    public static let countMax = 1 << 16
    public static let keyByteCount = 32

    /// Number of buckets, a power of two (0: a keyring from before buckets).
    public let count: Int
    /// Every installed version, sorted by bucket then version.
    public private(set) var keys: [BucketKey]

    public init(count: Int, keys: [BucketKey]) {
        precondition(count == 0 || (count.nonzeroBitCount == 1 && count <= Self.countMax), "bucket count is a power of two")
        self.count = count
        self.keys = keys.sorted { ($0.bucket, $0.version) < ($1.bucket, $1.version) }
    }

    public static let none = SubjectKeyBuckets(count: 0, keys: [])

    /// Version 1 of every bucket.
    public static func generate(count: Int = defaultCount, createdAt: Int64) -> SubjectKeyBuckets {
        SubjectKeyBuckets(count: count, keys: (0..<count).map { bucket in
            BucketKey(bucket: UInt16(bucket), version: 1, createdAt: createdAt, material: SecretBytes(randomCount: keyByteCount))
        })
    }

    /// The bucket of a pid: its first two digest bytes modulo the count (the
    /// digest is an HMAC output, so buckets fill evenly).
    public func bucket(of pid: PID) -> UInt16 {
        precondition(count > 0, "no bucket keys installed")
        return Self.bucket(of: pid, count: count)
    }

    public static func bucket(of pid: PID, count: Int) -> UInt16 {
        let digest = pid.digest
        return UInt16((Int(digest[0]) << 8 | Int(digest[1])) & (count - 1))
    }

    /// Installed versions of a bucket, oldest first.
    public func versions(of bucket: UInt16) -> ArraySlice<BucketKey> {
        let start = firstIndex(atLeast: bucket)
        var end = start
        while end < keys.count && keys[end].bucket == bucket { end += 1 }
        return keys[start..<end]
    }

    /// The version that wraps new subject keys of a bucket.
    public func current(_ bucket: UInt16) -> BucketKey? { versions(of: bucket).last }

    public func key(_ bucket: UInt16, version: UInt32) -> BucketKey? {
        versions(of: bucket).first { $0.version == version }
    }

    /// Versions older than their bucket's current one: left over from a
    /// rotation until no committed row uses them.
    public var retired: [BucketKey] {
        var found: [BucketKey] = []
        for (index, key) in keys.enumerated() where index + 1 < keys.count && keys[index + 1].bucket == key.bucket {
            found.append(key)
        }
        return found
    }

    /// Adds the next version of `bucket` and makes it current; the older
    /// versions stay until `destroy` (their rows are re-wrapped first).
    @discardableResult
    public mutating func rotate(_ bucket: UInt16, createdAt: Int64) -> BucketKey {
        ratchet(bucket, to: (current(bucket)?.version ?? 0) + 1, createdAt: createdAt)
    }

    /// Most versions one `ratchet` call may advance a bucket by: each step is
    /// one HMAC, so a corrupt or hostile version number costs at most a few
    /// seconds, never hours (`SubjectKeyring.catchUp` refuses bigger jumps).
    public static let ratchetStepsMax: UInt32 = 1 << 20

    /// Advances `bucket` to `version` by the one-way ratchet and makes that
    /// version current; the versions it passes through are derived, not kept,
    /// and the older installed versions stay until `destroy`. A no-op (the
    /// current key returned) when the bucket is already at or beyond `version`.
    ///
    /// Version v+1's material is HMAC-SHA256(key: version v's material,
    /// message: `ratchetLabel` ‖ bucket (u16 BE) ‖ v+1 (u32 BE)): knowing v+1
    /// tells nothing about v, so destroying v still shreds what it wrapped.
    @discardableResult
    public mutating func ratchet(_ bucket: UInt16, to version: UInt32, createdAt: Int64) -> BucketKey {
        precondition(Int(bucket) < count, "no such bucket")
        guard let latest = current(bucket) else { preconditionFailure("a bucket without a version") }
        guard version > latest.version else { return latest }
        precondition(version - latest.version <= Self.ratchetStepsMax, "a ratchet of more than ratchetStepsMax steps")
        var material = latest.material
        for step in (latest.version + 1)...version {
            material = Self.nextMaterial(after: material, bucket: bucket, version: step)
        }
        let key = BucketKey(bucket: bucket, version: version, createdAt: createdAt, material: material)
        keys.insert(key, at: firstIndex(atLeast: bucket) + versions(of: bucket).count)
        return key
    }

    /// The domain label of the ratchet's HMAC message (docs/FORMATS.md, "Bucket key ratchet").
    public static let ratchetLabel = Array("domicile/bucket-key-ratchet/v1".utf8)

    /// Version `version`'s material from version `version - 1`'s.
    static func nextMaterial(after previous: SecretBytes, bucket: UInt16, version: UInt32) -> SecretBytes {
        let message = ratchetLabel + [UInt8(bucket >> 8), UInt8(bucket & 0xFF),
                                      UInt8(version >> 24), UInt8((version >> 16) & 0xFF), UInt8((version >> 8) & 0xFF), UInt8(version & 0xFF)]
        var output = try! HMACKey(key: previous).authenticate(message)
        defer { wipe(&output) }
        return SecretBytes(output)
    }

    /// Removes the given versions; never a bucket's current one.
    public mutating func destroy(_ doomed: [BucketKey]) {
        let currents = Set(doomed.compactMap { current($0.bucket) }.map { BucketName(bucket: $0.bucket, version: $0.version) })
        let names = Set(doomed.map { BucketName(bucket: $0.bucket, version: $0.version) }).subtracting(currents)
        keys.removeAll { names.contains(BucketName(bucket: $0.bucket, version: $0.version)) }
    }

    private struct BucketName: Hashable {
        let bucket: UInt16
        let version: UInt32
    }

    private func firstIndex(atLeast bucket: UInt16) -> Int {
        var low = 0, high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle].bucket < bucket { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

/// The stored form of a subject key wrapped under a bucket key
/// (docs/FORMATS.md, "Wrapped subject key"):
///
/// `format 0x02 · bucket(2, big-endian) · Envelope(keyVersion = the bucket key's version)`
///
/// with associated data `format · bucket · "subject-key/" · pid`, so a wrapped
/// key cannot be moved to another subject or bucket. A key wrapped before
/// buckets is a bare Envelope under the region data key (first byte 0x01).
public enum WrappedSubjectKey {
    public static let format: UInt8 = 2
    public static let headerByteCount = 3

    /// A wrapped key's place: its bucket and the bucket key version.
    public struct Wrapping: Sendable, Hashable {
        public let bucket: UInt16
        public let version: UInt32

        public init(bucket: UInt16, version: UInt32) {
            self.bucket = bucket
            self.version = version
        }
    }

    public static func wrap(_ secret: SecretBytes, for pid: PID, under bucketKey: BucketKey,
                            using random: inout some RandomNumberGenerator) -> [UInt8] {
        let header = [format, UInt8(bucketKey.bucket >> 8), UInt8(bucketKey.bucket & 0xFF)]
        return header + Envelope.seal(secret, key: bucketKey.aesKey, associatedData: associatedData(pid, header), using: &random)
    }

    /// Bucket and version a wrapped key names; nil for the format from before buckets.
    public static func wrapping(of wrapped: [UInt8]) -> Wrapping? {
        guard wrapped.count > headerByteCount, wrapped[0] == format,
              let version = try? Envelope.keyVersion(of: wrapped.dropFirst(headerByteCount)) else { return nil }
        return Wrapping(bucket: UInt16(wrapped[1]) << 8 | UInt16(wrapped[2]), version: version)
    }

    /// The raw subject key; `bucketKey` must be the version `wrapping(of:)` names.
    public static func unwrap(_ wrapped: [UInt8], for pid: PID, under bucketKey: BucketKey) throws(CryptoError) -> [UInt8] {
        let header = Array(wrapped.prefix(headerByteCount))
        return try Envelope.open(wrapped.dropFirst(headerByteCount), key: bucketKey.aesKey, associatedData: associatedData(pid, header))
    }

    static func associatedData(_ pid: PID, _ header: [UInt8]) -> [UInt8] { header + Array("subject-key/\(pid.rawValue)".utf8) }
}
