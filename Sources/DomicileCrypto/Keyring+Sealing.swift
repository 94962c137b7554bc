import DomicileModel

/// The key that seals keyrings. It never lives in the data directory: it comes
/// from the environment or a key file that operators keep elsewhere.
public struct MasterKey: Sendable {
    public static let environmentVariable = "DOMICILE_MASTER_KEY"

    let key: AESGCMKey

    public init(base64 text: String) throws(KeyringError) {
        let trimmed = text.trimmingASCIIWhitespace()
        guard let bytes = Base64.decode(trimmed) else {
            throw .invalidMasterKey(reason: "not valid base64")
        }
        guard bytes.count == AESGCM.keyByteCount else {
            throw .invalidMasterKey(reason: "must decode to exactly 32 bytes, got \(bytes.count)")
        }
        // The master key has no versions of its own; 1 names the format.
        key = try! AESGCMKey(version: 1, secret: SecretBytes(bytes))
    }

    /// A fresh random master key, printed once by `domicile keys generate-master-key`.
    public static func generateBase64() -> String {
        Base64.encode(SecureRandom.bytes(AESGCM.keyByteCount))
    }
}

/// Layout of a sealed keyring file (docs/FORMATS.md, "Sealed keyring"):
///
/// `magic "DMKR"(4) · envelope(format · keyVersion · nonce · ciphertext · tag)`
///
/// with the magic as associated data, and a plaintext of
///
/// `format(1) · region(u8-prefixed) · node(u8-prefixed) · count(2) ·
///  count × [kind(1) · version(4) · createdAt(8) · material(u16-prefixed)] ·
///  bucketCount(4) · keyCount(4) · keyCount × [bucket(2) · version(4) · createdAt(8) · material(32)]`
///
/// (format 1, still read, ends after the entries and has no bucket keys).
extension Keyring {
    public static let fileMagic: [UInt8] = Array("DMKR".utf8)
    public static let plaintextFormat: UInt8 = 2
    static let plaintextFormatsRead: ClosedRange<UInt8> = 1...2

    public func sealed(with master: MasterKey) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64 + entries.count * 48 + buckets.keys.count * 46)
        writer.write(Self.plaintextFormat)
        writer.write8(string: region.rawValue)
        writer.write8(string: node.rawValue)
        writer.write(UInt16(entries.count))
        for entry in entries {
            writer.write(entry.kind.rawValue)
            writer.write(entry.version)
            writer.write(entry.createdAt)
            entry.material.withUnsafeBytes { writer.write16(prefixed: $0) }
        }
        writer.write(UInt32(buckets.count))
        writer.write(UInt32(buckets.keys.count))
        for key in buckets.keys {
            writer.write(key.bucket)
            writer.write(key.version)
            writer.write(key.createdAt)
            key.material.withUnsafeBytes { writer.write(raw: $0) }
        }
        var plaintext = writer.bytes
        defer { wipe(&plaintext) }
        return Self.fileMagic + Envelope.seal(plaintext, key: master.key, associatedData: Self.fileMagic)
    }

    public static func unseal(_ file: [UInt8], with master: MasterKey) throws(KeyringError) -> Keyring {
        guard file.count > fileMagic.count, Array(file.prefix(fileMagic.count)) == fileMagic else { throw .notAKeyring }
        let box = Array(file.dropFirst(fileMagic.count))
        var plaintext: [UInt8]
        do {
            plaintext = try Envelope.open(box, key: master.key, associatedData: fileMagic)
        } catch .authenticationFailed {
            throw .wrongMasterKey
        } catch .unsupportedFormat(let format) {
            throw .unsupportedFormat(format)
        } catch {
            throw .corrupt(reason: error.description)
        }
        defer { wipe(&plaintext) }
        do {
            return try parse(plaintext)
        } catch let error as KeyringError {
            throw error
        } catch {
            throw .corrupt(reason: "\(error)")
        }
    }

    private static func parse(_ plaintext: [UInt8]) throws -> Keyring {
        var reader = BinaryReader(plaintext, what: "keyring")
        let format = try reader.readUInt8()
        guard plaintextFormatsRead.contains(format) else { throw KeyringError.unsupportedFormat(format) }
        let region = try RegionID(try reader.read8String())
        let node = try NodeName(try reader.read8String())
        let count = Int(try reader.readUInt16())
        var entries: [KeyEntry] = []
        for _ in 0..<count {
            let kindByte = try reader.readUInt8()
            let version = try reader.readUInt32()
            let createdAt = try reader.readInt64()
            var material = try reader.read16Prefixed()
            defer { wipe(&material) }
            // Unknown kinds come from a newer version: refuse rather than drop them on the next save.
            guard let kind = KeyKind(rawValue: kindByte) else { throw KeyringError.corrupt(reason: "unknown key kind \(kindByte)") }
            guard material.count == kind.byteCount, version > 0 else {
                throw KeyringError.corrupt(reason: "bad \(kind) key entry")
            }
            entries.append(KeyEntry(kind: kind, version: version, createdAt: createdAt, material: SecretBytes(material)))
        }
        let buckets = format >= 2 ? try parseBuckets(&reader) : .none
        guard reader.isAtEnd else { throw KeyringError.corrupt(reason: "trailing bytes") }
        return Keyring(region: region, node: node, entries: entries, buckets: buckets)
    }

    private static func parseBuckets(_ reader: inout BinaryReader) throws -> SubjectKeyBuckets {
        let count = Int(try reader.readUInt32())
        let keyCount = Int(try reader.readUInt32())
        guard count == 0 || (count.nonzeroBitCount == 1 && count <= SubjectKeyBuckets.countMax),
              keyCount <= reader.remaining / (14 + SubjectKeyBuckets.keyByteCount) else {
            throw KeyringError.corrupt(reason: "bad bucket key section")
        }
        var keys: [BucketKey] = []
        keys.reserveCapacity(keyCount)
        for _ in 0..<keyCount {
            let bucket = try reader.readUInt16()
            let version = try reader.readUInt32()
            let createdAt = try reader.readInt64()
            var material = try reader.readBytes(SubjectKeyBuckets.keyByteCount)
            defer { wipe(&material) }
            guard Int(bucket) < count, version > 0 else { throw KeyringError.corrupt(reason: "bad bucket key entry") }
            keys.append(BucketKey(bucket: bucket, version: version, createdAt: createdAt, material: SecretBytes(material)))
        }
        let buckets = SubjectKeyBuckets(count: count, keys: keys)
        guard (0..<count).allSatisfy({ buckets.current(UInt16($0)) != nil }) else {
            throw KeyringError.corrupt(reason: "a bucket has no key")
        }
        return buckets
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let utf8 = Array(self.utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let start = utf8.firstIndex(where: { !isSpace($0) }),
              let end = utf8.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: utf8[start...end], as: UTF8.self)
    }
}

/// Best-effort wipe of a temporary copy of key material.
func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { raw in
        for index in raw.indices { raw[index] = 0 }
    }
}
