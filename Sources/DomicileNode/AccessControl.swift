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

/// Access-anomaly detection: a principal touching more distinct subjects in
/// one minute than `distinctSubjectsPerMinute` is flagged once for that
/// minute. Windows are fixed calendar minutes; memory per principal is
/// bounded by the limit (counting stops once it is crossed).
final class AccessMonitor: Sendable {
    private struct Window {
        var minute: Int64
        var subjects: Set<String> = []
        var flagged = false
    }

    let distinctSubjectsPerMinute: Int
    private let windows = Locked<[String: Window]>([:])

    init(distinctSubjectsPerMinute: Int) { self.distinctSubjectsPerMinute = distinctSubjectsPerMinute }

    /// Records that `principal` touched `pid`. Returns the number of distinct
    /// subjects when this touch is the one that crosses the limit.
    func touch(_ principal: String, pid: String, now: Timestamp) -> Int? {
        let minute = now.milliseconds / 60_000
        let limit = distinctSubjectsPerMinute
        return windows.withLock { windows -> Int? in
            var window = windows[principal].flatMap { $0.minute == minute ? $0 : nil } ?? Window(minute: minute)
            defer { windows[principal] = window }
            guard !window.flagged else { return nil }
            window.subjects.insert(pid)
            guard window.subjects.count > limit else { return nil }
            window.flagged = true
            let count = window.subjects.count
            window.subjects = []
            return count
        }
    }
}
