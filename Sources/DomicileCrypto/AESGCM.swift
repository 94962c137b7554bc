import COpenSSL

/// Raw AES-256-GCM with a caller-chosen 96-bit nonce. Callers inside Domicile
/// use `Envelope`, which draws the nonce and versions the output; this layer
/// exists for the NIST known-answer tests and for the envelope itself.
public enum AESGCM {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    public static func seal(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                            plaintext: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer,
                            ciphertext: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer)
        throws(CryptoError) {
        precondition(ciphertext.count >= plaintext.count && tag.count == tagByteCount, "output buffers too small")
        let context = try makeContext(key: key, nonce: nonce, encrypt: true)
        defer { EVP_CIPHER_CTX_free(context) }
        var length: Int32 = 0
        if associatedData.count > 0 {
            guard EVP_EncryptUpdate(context, nil, &length, bytes(associatedData), Int32(associatedData.count)) == 1
            else { throw OpenSSL.error("EVP_EncryptUpdate(aad)") }
        }
        if plaintext.count > 0 {
            guard EVP_EncryptUpdate(context, mutableBytes(ciphertext), &length, bytes(plaintext),
                                    Int32(plaintext.count)) == 1 else { throw OpenSSL.error("EVP_EncryptUpdate") }
        }
        // GCM is a stream mode: Final writes no bytes, it computes the tag.
        guard EVP_EncryptFinal_ex(context, mutableBytes(ciphertext), &length) == 1,
              EVP_CIPHER_CTX_ctrl(context, domicile_evp_ctrl_gcm_get_tag(), Int32(tagByteCount),
                                  tag.baseAddress) == 1 else { throw OpenSSL.error("EVP_EncryptFinal_ex") }
    }

    /// Throws `authenticationFailed` when the tag does not verify; the output
    /// buffer then holds nothing usable and the caller must discard it.
    public static func open(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                            ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer,
                            associatedData: UnsafeRawBufferPointer,
                            plaintext: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        precondition(plaintext.count >= ciphertext.count, "output buffer too small")
        guard tag.count == tagByteCount else { throw .malformedCiphertext(reason: "tag must be 16 bytes") }
        let context = try makeContext(key: key, nonce: nonce, encrypt: false)
        defer { EVP_CIPHER_CTX_free(context) }
        var length: Int32 = 0
        if associatedData.count > 0 {
            guard EVP_DecryptUpdate(context, nil, &length, bytes(associatedData), Int32(associatedData.count)) == 1
            else { throw OpenSSL.error("EVP_DecryptUpdate(aad)") }
        }
        if ciphertext.count > 0 {
            guard EVP_DecryptUpdate(context, mutableBytes(plaintext), &length, bytes(ciphertext),
                                    Int32(ciphertext.count)) == 1 else { throw OpenSSL.error("EVP_DecryptUpdate") }
        }
        // EVP_CIPHER_CTX_ctrl takes a non-const pointer but only reads the tag.
        guard EVP_CIPHER_CTX_ctrl(context, domicile_evp_ctrl_gcm_set_tag(), Int32(tagByteCount),
                                  UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1 else {
            throw OpenSSL.error("EVP_CIPHER_CTX_ctrl(set tag)")
        }
        // DecryptFinal returns 0 exactly when the tag does not match.
        guard EVP_DecryptFinal_ex(context, mutableBytes(plaintext), &length) == 1 else {
            _ = OpenSSL.lastError()
            plaintext.initializeMemory(as: UInt8.self, repeating: 0)
            throw .authenticationFailed
        }
    }

    private static func makeContext(key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                                    encrypt: Bool) throws(CryptoError) -> OpaquePointer {
        guard key.count == keyByteCount else { throw .invalidKey(reason: "AES-256 keys are 32 bytes") }
        guard nonce.count == nonceByteCount else { throw .malformedCiphertext(reason: "nonce must be 12 bytes") }
        guard let context = EVP_CIPHER_CTX_new() else { throw OpenSSL.error("EVP_CIPHER_CTX_new") }
        // 12 bytes is GCM's default IV length, so no SET_IVLEN call is needed.
        let initialized = encrypt
            ? EVP_EncryptInit_ex2(context, Algorithms.shared.aes256GCM, bytes(key), bytes(nonce), nil)
            : EVP_DecryptInit_ex2(context, Algorithms.shared.aes256GCM, bytes(key), bytes(nonce), nil)
        guard initialized == 1 else {
            EVP_CIPHER_CTX_free(context)
            throw OpenSSL.error("EVP_CipherInit_ex2")
        }
        return context
    }

    private static func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }

    private static func mutableBytes(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<UInt8>? {
        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }
}

/// A versioned AES-256-GCM key.
public struct AESGCMKey: Sendable {
    public let version: UInt32
    public let secret: SecretBytes

    public init(version: UInt32, secret: SecretBytes) throws(CryptoError) {
        guard secret.count == AESGCM.keyByteCount else { throw .invalidKey(reason: "AES-256 keys are 32 bytes") }
        self.version = version
        self.secret = secret
    }
}

/// The ciphertext format of everything Domicile encrypts at rest and on the
/// wire (docs/FORMATS.md, "Envelope"):
///
/// `format(1) · keyVersion(4, big-endian) · nonce(12) · ciphertext · tag(16)`
///
/// The 5-byte header is authenticated together with the caller's associated
/// data, so the version cannot be swapped; the caller's associated data (the
/// row's primary key, the pool label) binds a ciphertext to its place.
public enum Envelope {
    public static let format: UInt8 = 1
    public static let headerByteCount = 1 + 4 + AESGCM.nonceByteCount
    public static let overheadByteCount = headerByteCount + AESGCM.tagByteCount

    public static func seal<Plaintext: ContiguousBytes, AD: ContiguousBytes>(
        _ plaintext: Plaintext, key: AESGCMKey, associatedData: AD
    ) -> [UInt8] {
        var random = SecureRandom()
        return seal(plaintext, key: key, associatedData: associatedData, using: &random)
    }

    /// The same, the nonce drawn from `random`: an injected source, so a
    /// replayed run seals to the same bytes. In production it is the CSPRNG
    /// (`SecureRandomSource`); 96 random bits per nonce.
    public static func seal<Plaintext: ContiguousBytes, AD: ContiguousBytes>(
        _ plaintext: Plaintext, key: AESGCMKey, associatedData: AD, using random: inout some RandomNumberGenerator
    ) -> [UInt8] {
        plaintext.withUnsafeBytes { plain in
            var box = [UInt8](repeating: 0, count: overheadByteCount + plain.count)
            box[0] = format
            withUnsafeBytes(of: key.version.bigEndian) { box.replaceSubrange(1..<5, with: $0) }
            box.withUnsafeMutableBytes { out in
                random.fill(UnsafeMutableRawBufferPointer(rebasing: out[5..<headerByteCount]))
                let aad = authenticatedData(header: UnsafeRawBufferPointer(rebasing: out[0..<5]), associatedData)
                let ciphertextEnd = headerByteCount + plain.count
                key.secret.withUnsafeBytes { keyBytes in
                    aad.withUnsafeBytes { aadBytes in
                        do {
                            try AESGCM.seal(
                                key: keyBytes, nonce: UnsafeRawBufferPointer(rebasing: out[5..<headerByteCount]),
                                plaintext: plain, associatedData: aadBytes,
                                ciphertext: UnsafeMutableRawBufferPointer(rebasing: out[headerByteCount..<ciphertextEnd]),
                                tag: UnsafeMutableRawBufferPointer(rebasing: out[ciphertextEnd...]))
                        } catch {
                            // The key length was checked when the key was built.
                            preconditionFailure("AES-GCM seal failed: \(error)")
                        }
                    }
                }
            }
            return box
        }
    }

    /// The key version a ciphertext names, so the caller can pick the key.
    public static func keyVersion<Box: ContiguousBytes>(of box: Box) throws(CryptoError) -> UInt32 {
        let (count, header) = box.withUnsafeBytes { ($0.count, Array($0.prefix(5))) }
        guard count >= overheadByteCount else { throw .malformedCiphertext(reason: "shorter than the envelope") }
        guard header[0] == format else { throw .unsupportedFormat(header[0]) }
        return UInt32(header[1]) << 24 | UInt32(header[2]) << 16 | UInt32(header[3]) << 8 | UInt32(header[4])
    }

    public static func open<Box: ContiguousBytes, AD: ContiguousBytes>(
        _ box: Box, keys: KeySet, associatedData: AD
    ) throws(CryptoError) -> [UInt8] {
        let version = try keyVersion(of: box)
        guard let key = keys.key(version: version) else { throw .unknownKeyVersion(version) }
        return try open(box, key: key, associatedData: associatedData)
    }

    public static func open<Box: ContiguousBytes, AD: ContiguousBytes>(
        _ box: Box, key: AESGCMKey, associatedData: AD
    ) throws(CryptoError) -> [UInt8] {
        let version = try keyVersion(of: box)
        guard version == key.version else { throw .unknownKeyVersion(version) }
        // The closures below cannot throw a typed error through the
        // `rethrows` buffer APIs, so they return the outcome instead.
        let outcome: Result<[UInt8], CryptoError> = box.withUnsafeBytes { raw in
            let ciphertextEnd = raw.count - AESGCM.tagByteCount
            var plaintext = [UInt8](repeating: 0, count: ciphertextEnd - headerByteCount)
            let aad = authenticatedData(header: UnsafeRawBufferPointer(rebasing: raw[0..<5]), associatedData)
            let opened: Result<Void, CryptoError> = key.secret.withUnsafeBytes { keyBytes in
                aad.withUnsafeBytes { aadBytes in
                    plaintext.withUnsafeMutableBytes { out in
                        Result { () throws(CryptoError) in
                            try AESGCM.open(
                                key: keyBytes, nonce: UnsafeRawBufferPointer(rebasing: raw[5..<headerByteCount]),
                                ciphertext: UnsafeRawBufferPointer(rebasing: raw[headerByteCount..<ciphertextEnd]),
                                tag: UnsafeRawBufferPointer(rebasing: raw[ciphertextEnd...]),
                                associatedData: aadBytes, plaintext: out)
                        }
                    }
                }
            }
            return opened.map { plaintext }
        }
        return try outcome.get()
    }

    private static func authenticatedData<AD: ContiguousBytes>(header: UnsafeRawBufferPointer, _ ad: AD) -> [UInt8] {
        var aad = Array(header)
        ad.withUnsafeBytes { aad.append(contentsOf: $0) }
        return aad
    }
}

/// Every installed version of one kind of symmetric key; the newest encrypts.
public struct KeySet: Sendable {
    public let keys: [AESGCMKey]

    public init(_ keys: [AESGCMKey]) {
        precondition(!keys.isEmpty, "a key set holds at least one key")
        self.keys = keys.sorted { $0.version > $1.version }
    }

    public var primary: AESGCMKey { keys[0] }

    public func key(version: UInt32) -> AESGCMKey? { keys.first { $0.version == version } }

    public func seal<Plaintext: ContiguousBytes, AD: ContiguousBytes>(_ plaintext: Plaintext, associatedData: AD) -> [UInt8] {
        Envelope.seal(plaintext, key: primary, associatedData: associatedData)
    }

    public func open<Box: ContiguousBytes, AD: ContiguousBytes>(_ box: Box, associatedData: AD) throws(CryptoError) -> [UInt8] {
        try Envelope.open(box, keys: self, associatedData: associatedData)
    }
}
