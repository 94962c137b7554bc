import COpenSSL

/// An Ed25519 signing key (RFC 8032), held as an OpenSSL EVP_PKEY.
public final class Ed25519PrivateKey: @unchecked Sendable {
    public static let seedByteCount = 32
    public static let signatureByteCount = 64

    private let key: OpaquePointer
    public let publicKey: Ed25519PublicKey

    public init<Seed: ContiguousBytes>(seed: Seed) throws(CryptoError) {
        let made = seed.withUnsafeBytes { raw -> OpaquePointer? in
            guard raw.count == Self.seedByteCount else { return nil }
            return EVP_PKEY_new_raw_private_key(domicile_evp_pkey_ed25519(), nil,
                                                raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        guard let made else { throw .invalidKey(reason: "Ed25519 seeds are 32 bytes") }
        var publicBytes = [UInt8](repeating: 0, count: Ed25519PublicKey.byteCount)
        var length = publicBytes.count
        guard EVP_PKEY_get_raw_public_key(made, &publicBytes, &length) == 1 else {
            EVP_PKEY_free(made)
            throw OpenSSL.error("EVP_PKEY_get_raw_public_key")
        }
        key = made
        publicKey = try Ed25519PublicKey(rawRepresentation: publicBytes)
    }

    deinit { EVP_PKEY_free(key) }

    public func signature<Message: ContiguousBytes>(for message: Message) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { preconditionFailure("EVP_MD_CTX_new: \(OpenSSL.lastError())") }
        defer { EVP_MD_CTX_free(context) }
        // Ed25519 is a one-shot signature: no digest is named (EVP_SIGNATURE-ED25519(7)).
        OpenSSL.check(EVP_DigestSignInit(context, nil, nil, nil, key), "EVP_DigestSignInit")
        var signature = [UInt8](repeating: 0, count: Self.signatureByteCount)
        var length = signature.count
        withMessagePointer(message) { pointer, count in
            OpenSSL.check(EVP_DigestSign(context, &signature, &length, pointer, count), "EVP_DigestSign")
        }
        return signature
    }
}

public struct Ed25519PublicKey: Hashable, Sendable {
    public static let byteCount = 32
    public let rawRepresentation: [UInt8]

    public init(rawRepresentation: [UInt8]) throws(CryptoError) {
        guard rawRepresentation.count == Self.byteCount else { throw .invalidKey(reason: "Ed25519 public keys are 32 bytes") }
        self.rawRepresentation = rawRepresentation
    }

    public func isValidSignature<Message: ContiguousBytes>(_ signature: [UInt8], for message: Message) -> Bool {
        guard signature.count == Ed25519PrivateKey.signatureByteCount else { return false }
        guard let key = EVP_PKEY_new_raw_public_key(domicile_evp_pkey_ed25519(), nil, rawRepresentation,
                                                    rawRepresentation.count) else {
            _ = OpenSSL.lastError()
            return false
        }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { preconditionFailure("EVP_MD_CTX_new: \(OpenSSL.lastError())") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1 else {
            _ = OpenSSL.lastError()
            return false
        }
        let result = withMessagePointer(message) { pointer, count in
            EVP_DigestVerify(context, signature, signature.count, pointer, count)
        }
        if result != 1 { _ = OpenSSL.lastError() }
        return result == 1
    }
}

/// OpenSSL wants a non-NULL pointer even for an empty message (RFC 8032 test 1
/// signs the empty string); an empty Swift array may have no base address.
private func withMessagePointer<Message: ContiguousBytes, R>(
    _ message: Message, _ body: (UnsafePointer<UInt8>, Int) -> R
) -> R {
    message.withUnsafeBytes { raw in
        if let base = raw.baseAddress, raw.count > 0 {
            return body(base.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        var placeholder: UInt8 = 0
        return withUnsafePointer(to: &placeholder) { body($0, 0) }
    }
}
