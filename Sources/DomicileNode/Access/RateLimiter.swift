import DomicileModel

/// Per-principal token buckets for reads and searches: each principal may
/// make `ratePerSecond` calls per second on average, `burst` at once.
final class RateLimiter: Sendable {
    struct Settings: Sendable, Equatable {
        var ratePerSecond: Double = 1_000
        var burst: Double = 2_000
    }

    private struct Bucket {
        var tokens: Double
        var updatedAt: Int64
    }

    let settings: Settings
    /// One bucket per principal; principals come from the principals file, so this stays small.
    private let buckets = Locked<[String: Bucket]>([:])

    init(settings: Settings) { self.settings = settings }

    /// Takes a token for `principal`. Returns nil when the call may go
    /// ahead, otherwise the whole seconds until a token is available.
    func take(_ principal: String, now: Timestamp) -> Int64? {
        let settings = self.settings
        return buckets.withLock { buckets -> Int64? in
            var bucket = buckets[principal] ?? Bucket(tokens: settings.burst, updatedAt: now.milliseconds)
            let elapsed = Double(max(0, now.milliseconds - bucket.updatedAt)) / 1_000
            bucket.tokens = min(settings.burst, bucket.tokens + elapsed * settings.ratePerSecond)
            bucket.updatedAt = now.milliseconds
            defer { buckets[principal] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return Int64(((1 - bucket.tokens) / settings.ratePerSecond).rounded(.up))
        }
    }
}
