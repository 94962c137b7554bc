import COpenSSL

/// Failures a caller can act on. None carries key material or plaintext.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The ciphertext, tag, key or associated data do not match.
    case authenticationFailed
    case malformedCiphertext(reason: String)
    case unsupportedFormat(UInt8)
    case unknownKeyVersion(UInt32)
    case invalidKey(reason: String)
    case invalidSignature
    /// OpenSSL refused an operation; `reason` is its error string.
    case openSSL(function: String, reason: String)

    public var description: String {
        switch self {
        case .authenticationFailed: return "authentication failed (wrong key, tampered data or wrong associated data)"
        case .malformedCiphertext(let reason): return "malformed ciphertext: \(reason)"
        case .unsupportedFormat(let format): return "unsupported format byte \(format)"
        case .unknownKeyVersion(let version): return "no key of version \(version) is installed"
        case .invalidKey(let reason): return "invalid key: \(reason)"
        case .invalidSignature: return "invalid signature"
        case .openSSL(let function, let reason): return "\(function) failed: \(reason)"
        }
    }
}

enum OpenSSL {
    /// Drains OpenSSL's thread-local error queue into one line.
    static func lastError() -> String {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self))
        }
        return reasons.isEmpty ? "unknown error" : reasons.joined(separator: "; ")
    }

    static func error(_ function: String) -> CryptoError {
        .openSSL(function: function, reason: lastError())
    }

    /// For calls that only fail on allocation failure or a broken OpenSSL:
    /// there is nothing a caller could do, so stop (fail closed).
    static func check(_ result: Int32, _ function: String) {
        precondition(result == 1, "\(function) failed: \(lastError())")
    }
}

/// Algorithms fetched once from the default provider. Fetching per call costs
/// a lock and a hash lookup; fetched EVP_MD / EVP_MAC / EVP_CIPHER objects are
/// immutable and may be shared by threads (OpenSSL 3 "crypto(7)", threads).
final class Algorithms: @unchecked Sendable {
    static let shared = Algorithms()

    let sha256: OpaquePointer
    let hmac: OpaquePointer
    let aes256GCM: OpaquePointer

    private init() {
        guard let sha256 = EVP_MD_fetch(nil, "SHA256", nil),
              let hmac = EVP_MAC_fetch(nil, "HMAC", nil),
              let aes = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil) else {
            preconditionFailure("OpenSSL's default provider lacks SHA256, HMAC or AES-256-GCM: \(OpenSSL.lastError())")
        }
        self.sha256 = sha256
        self.hmac = hmac
        self.aes256GCM = aes
    }
}
