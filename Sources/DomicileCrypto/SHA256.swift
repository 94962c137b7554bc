import COpenSSL

public enum SHA256 {
    public static let byteCount = 32

    public static func hash<Bytes: ContiguousBytes>(_ data: Bytes) -> [UInt8] {
        data.withUnsafeBytes { hash(raw: $0) }
    }

    public static func hash(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { hash(raw: UnsafeRawBufferPointer($0)) }
    }

    public static func hash(raw data: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: byteCount)
        var length: UInt32 = 0
        digest.withUnsafeMutableBufferPointer { out in
            OpenSSL.check(EVP_Digest(data.baseAddress ?? UnsafeRawPointer(out.baseAddress!), data.count,
                                     out.baseAddress, &length, Algorithms.shared.sha256, nil), "EVP_Digest")
        }
        return digest
    }
}

extension SHA256 {
    /// A SHA-256 digest of bytes given in pieces (a file read in chunks).
    /// Used by one thread at a time.
    public final class Hasher {
        private let context: OpaquePointer

        public init() {
            guard let context = EVP_MD_CTX_new() else { preconditionFailure("EVP_MD_CTX_new failed: \(OpenSSL.lastError())") }
            OpenSSL.check(EVP_DigestInit_ex2(context, Algorithms.shared.sha256, nil), "EVP_DigestInit_ex2")
            self.context = context
        }

        deinit { EVP_MD_CTX_free(context) }

        public func update(_ data: UnsafeRawBufferPointer) {
            guard let base = data.baseAddress, data.count > 0 else { return }
            OpenSSL.check(EVP_DigestUpdate(context, base, data.count), "EVP_DigestUpdate")
        }

        public func update<Bytes: ContiguousBytes>(_ data: Bytes) {
            data.withUnsafeBytes { update($0) }
        }

        /// The digest of everything given so far; the hasher is then spent.
        public func finalize() -> [UInt8] {
            var digest = [UInt8](repeating: 0, count: SHA256.byteCount)
            var length: UInt32 = 0
            OpenSSL.check(EVP_DigestFinal_ex(context, &digest, &length), "EVP_DigestFinal_ex")
            return digest
        }
    }
}

/// Something whose bytes can be read in place.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension SecretBytes: ContiguousBytes {}
