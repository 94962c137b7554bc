import COpenSSL

public enum ConstantTime {
    /// Compares secrets (tokens, MACs) without leaking where they differ.
    /// Lengths are public (they are fixed for MACs and token digests).
    public static func equals<A: ContiguousBytes, B: ContiguousBytes>(_ lhs: A, _ rhs: B) -> Bool {
        lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in
                guard l.count == r.count else { return false }
                guard l.count > 0 else { return true }
                return CRYPTO_memcmp(l.baseAddress, r.baseAddress, l.count) == 0
            }
        }
    }
}
