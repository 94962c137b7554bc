import COpenSSL

/// AES-256-GCM under one key for many messages, the key schedule set up
/// once: for a connection that seals every frame under its own key (the
/// region channel), where `AESGCM`'s set-up per call would cost as much as
/// sealing a small frame. Same output as `AESGCM.seal` and `AESGCM.open`.
/// The caller chooses the nonces and must never repeat one under a key.
/// Not `Sendable`: its OpenSSL contexts are used by one thread at a time.
public final class AESGCMStream {
    private let encrypting: OpaquePointer
    private let decrypting: OpaquePointer

    public init(key: SecretBytes) throws(CryptoError) {
        guard key.count == AESGCM.keyByteCount else { throw .invalidKey(reason: "AES-256 keys are 32 bytes") }
        guard let encrypting = EVP_CIPHER_CTX_new() else { throw OpenSSL.error("EVP_CIPHER_CTX_new") }
        guard let decrypting = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_CTX_free(encrypting)
            throw OpenSSL.error("EVP_CIPHER_CTX_new")
        }
        self.encrypting = encrypting
        self.decrypting = decrypting
        // The key now, the nonce per message: a later Init with a NULL cipher
        // and key keeps the key schedule and sets only the IV.
        let initialized = key.withUnsafeBytes { raw -> Bool in
            let bytes = raw.baseAddress?.assumingMemoryBound(to: UInt8.self)
            return EVP_EncryptInit_ex2(encrypting, Algorithms.shared.aes256GCM, bytes, nil, nil) == 1
                && EVP_DecryptInit_ex2(decrypting, Algorithms.shared.aes256GCM, bytes, nil, nil) == 1
        }
        guard initialized else { throw OpenSSL.error("EVP_CipherInit_ex2") }
    }

    deinit {
        EVP_CIPHER_CTX_free(encrypting)
        EVP_CIPHER_CTX_free(decrypting)
    }

    /// `ciphertext · tag(16)` of `plaintext` under `nonce` (12 bytes).
    public func seal(nonce: [UInt8], plaintext: [UInt8], associatedData: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard nonce.count == AESGCM.nonceByteCount else { throw .malformedCiphertext(reason: "nonce must be 12 bytes") }
        var box = [UInt8](repeating: 0, count: plaintext.count + AESGCM.tagByteCount)
        var length: Int32 = 0
        let sealed = box.withUnsafeMutableBufferPointer { out -> Bool in
            guard EVP_EncryptInit_ex2(encrypting, nil, nil, nonce, nil) == 1,
                  associatedData.isEmpty || EVP_EncryptUpdate(encrypting, nil, &length, associatedData, Int32(associatedData.count)) == 1,
                  plaintext.isEmpty || EVP_EncryptUpdate(encrypting, out.baseAddress, &length, plaintext, Int32(plaintext.count)) == 1,
                  // GCM is a stream mode: Final writes no bytes, it computes the tag.
                  EVP_EncryptFinal_ex(encrypting, out.baseAddress, &length) == 1 else { return false }
            return EVP_CIPHER_CTX_ctrl(encrypting, domicile_evp_ctrl_gcm_get_tag(), Int32(AESGCM.tagByteCount),
                                       out.baseAddress! + plaintext.count) == 1
        }
        guard sealed else { throw OpenSSL.error("AES-GCM seal") }
        return box
    }

    /// The plaintext of `box` (`ciphertext · tag`); throws
    /// `authenticationFailed` when the tag does not verify.
    public func open(nonce: [UInt8], box: [UInt8], associatedData: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard nonce.count == AESGCM.nonceByteCount else { throw .malformedCiphertext(reason: "nonce must be 12 bytes") }
        guard box.count >= AESGCM.tagByteCount else { throw .malformedCiphertext(reason: "shorter than the tag") }
        let count = box.count - AESGCM.tagByteCount
        var plaintext = [UInt8](repeating: 0, count: count)
        var length: Int32 = 0
        let prepared = box.withUnsafeBufferPointer { input in
            plaintext.withUnsafeMutableBufferPointer { out -> Bool in
                // EVP_CIPHER_CTX_ctrl takes a non-const pointer but only reads the tag.
                EVP_DecryptInit_ex2(decrypting, nil, nil, nonce, nil) == 1
                    && (associatedData.isEmpty
                        || EVP_DecryptUpdate(decrypting, nil, &length, associatedData, Int32(associatedData.count)) == 1)
                    && (count == 0 || EVP_DecryptUpdate(decrypting, out.baseAddress, &length, input.baseAddress, Int32(count)) == 1)
                    && EVP_CIPHER_CTX_ctrl(decrypting, domicile_evp_ctrl_gcm_set_tag(), Int32(AESGCM.tagByteCount),
                                           UnsafeMutableRawPointer(mutating: input.baseAddress! + count)) == 1
            }
        }
        guard prepared else { throw OpenSSL.error("AES-GCM open") }
        // DecryptFinal returns 0 exactly when the tag does not match.
        let verified = plaintext.withUnsafeMutableBufferPointer { EVP_DecryptFinal_ex(decrypting, $0.baseAddress, &length) == 1 }
        guard verified else {
            _ = OpenSSL.lastError()
            throw .authenticationFailed
        }
        return plaintext
    }
}
