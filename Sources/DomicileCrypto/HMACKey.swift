import COpenSSL
import Glibc
import Synchronization

/// An HMAC-SHA256 key (RFC 2104), keyed once.
///
/// Keying HMAC absorbs `K ⊕ ipad` and `K ⊕ opad` into two SHA-256 states.
/// This type does that once, into two template digest contexts; each call
/// copies them into a pair of scratch contexts taken from a small pool
/// (`EVP_MD_CTX_copy_ex`), so the key is never processed again. Working on
/// EVP digests directly, rather than through EVP_MAC, also skips EVP_MAC's
/// per-call parameter lookups; the RFC 4231 known-answer tests check the
/// construction.
public final class HMACKey: @unchecked Sendable {
    public static let byteCount = 32
    static let blockByteCount = 64
    /// Idle scratch pairs kept for reuse; beyond that they are freed. A bound,
    /// not a limit on concurrency: a call never waits for a context.
    static let idleContextsMax = 64

    private let inner: OpaquePointer
    private let outer: OpaquePointer
    private let idle: Mutex<[Scratch]>

    /// Two EVP_MD_CTX owned by exactly one caller at a time (checked out of
    /// the pool), which is what makes moving them between threads safe.
    private struct Scratch: @unchecked Sendable {
        let inner: OpaquePointer
        let outer: OpaquePointer
    }

    public init<Key: ContiguousBytes>(key: Key) throws(CryptoError) {
        // K0: the key, hashed first if longer than a block, zero-padded to a block.
        var block = [UInt8](repeating: 0, count: Self.blockByteCount)
        key.withUnsafeBytes { raw in
            if raw.count > Self.blockByteCount {
                block.replaceSubrange(0..<Self.byteCount, with: SHA256.hash(raw: raw))
            } else {
                block.replaceSubrange(0..<raw.count, with: raw)
            }
        }
        defer { wipe(&block) }
        guard let inner = Self.keyedDigest(block, pad: 0x36) else { throw OpenSSL.error("EVP_DigestInit_ex2") }
        guard let outer = Self.keyedDigest(block, pad: 0x5C) else {
            EVP_MD_CTX_free(inner)
            throw OpenSSL.error("EVP_DigestInit_ex2")
        }
        self.inner = inner
        self.outer = outer
        idle = Mutex([])
    }

    private static func keyedDigest(_ block: [UInt8], pad: UInt8) -> OpaquePointer? {
        guard let context = EVP_MD_CTX_new() else { return nil }
        var padded = block.map { $0 ^ pad }
        defer { wipe(&padded) }
        guard EVP_DigestInit_ex2(context, Algorithms.shared.sha256, nil) == 1,
              EVP_DigestUpdate(context, padded, padded.count) == 1 else {
            EVP_MD_CTX_free(context)
            return nil
        }
        return context
    }

    deinit {
        idle.withLock { pairs in pairs.forEach { EVP_MD_CTX_free($0.inner); EVP_MD_CTX_free($0.outer) } }
        EVP_MD_CTX_free(inner)
        EVP_MD_CTX_free(outer)
    }

    /// HMAC-SHA256 of `message` written into `output` (32 bytes).
    public func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= Self.byteCount, "HMAC output buffer must hold 32 bytes")
        let scratch = checkOut()
        defer { checkIn(scratch) }
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var length: UInt32 = 0
        OpenSSL.check(EVP_MD_CTX_copy_ex(scratch.inner, inner), "EVP_MD_CTX_copy_ex")
        if let base = message.baseAddress, message.count > 0 {
            OpenSSL.check(EVP_DigestUpdate(scratch.inner, base, message.count), "EVP_DigestUpdate")
        }
        OpenSSL.check(EVP_DigestFinal_ex(scratch.inner, out, &length), "EVP_DigestFinal_ex")
        OpenSSL.check(EVP_MD_CTX_copy_ex(scratch.outer, outer), "EVP_MD_CTX_copy_ex")
        OpenSSL.check(EVP_DigestUpdate(scratch.outer, out, Self.byteCount), "EVP_DigestUpdate")
        OpenSSL.check(EVP_DigestFinal_ex(scratch.outer, out, &length), "EVP_DigestFinal_ex")
    }

    public func authenticate<Message: ContiguousBytes>(_ message: Message) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Self.byteCount)
        message.withUnsafeBytes { raw in
            output.withUnsafeMutableBytes { authenticate(raw, into: $0) }
        }
        return output
    }

    private func checkOut() -> Scratch {
        if let scratch = idle.withLock({ $0.popLast() }) { return scratch }
        guard let first = EVP_MD_CTX_new(), let second = EVP_MD_CTX_new() else {
            preconditionFailure("EVP_MD_CTX_new failed: \(OpenSSL.lastError())")
        }
        return Scratch(inner: first, outer: second)
    }

    private func checkIn(_ scratch: Scratch) {
        let kept = idle.withLock { pairs in
            guard pairs.count < Self.idleContextsMax else { return false }
            pairs.append(scratch)
            return true
        }
        if !kept {
            EVP_MD_CTX_free(scratch.inner)
            EVP_MD_CTX_free(scratch.outer)
        }
    }
}
