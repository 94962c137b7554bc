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

/// Something whose bytes can be read in place.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension SecretBytes: ContiguousBytes {}
