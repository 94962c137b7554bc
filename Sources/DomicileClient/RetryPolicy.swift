import Foundation

/// When to try a call again, and after how long: pure, so the decision can
/// be tested without a clock (the random draw and the node's `Retry-After`
/// come in).
struct RetryPolicy: Sendable, Equatable {
    /// Attempts per call, the first included.
    let attemptsMax: Int
    /// The back-off before the second attempt, doubled per attempt.
    let baseDelayMilliseconds: Int64
    /// No single wait is longer, `Retry-After` included.
    let delayMaxMilliseconds: Int64

    init(_ configuration: DomicileClient.Configuration) {
        attemptsMax = configuration.attemptsMax
        baseDelayMilliseconds = configuration.retryDelayMilliseconds
        delayMaxMilliseconds = configuration.retryDelayMaxMilliseconds
    }

    init(attemptsMax: Int, baseDelayMilliseconds: Int64, delayMaxMilliseconds: Int64) {
        self.attemptsMax = attemptsMax
        self.baseDelayMilliseconds = baseDelayMilliseconds
        self.delayMaxMilliseconds = delayMaxMilliseconds
    }

    /// How long to wait before attempt `attempt + 1` after attempt `attempt`
    /// (1-based) failed, or nil when the call should fail now: no attempt
    /// left, or the node asks for a longer wait than `delayMaxMilliseconds`.
    /// `jitter` is a draw from [0, 1): the back-off is spread over its upper
    /// half (so clients refused together do not return together, and none
    /// returns sooner than half the back-off). A node's `Retry-After` is a
    /// floor: never retried sooner than it asked.
    func delayMilliseconds(afterAttempt attempt: Int, retryAfterSeconds: Int64?, jitter: Double) -> Int64? {
        guard attempt < attemptsMax else { return nil }
        let exponent = Int64(1) << Int64(min(attempt - 1, 20))
        let backOff = min(delayMaxMilliseconds, baseDelayMilliseconds.multipliedReportingOverflow(by: exponent).overflow
                          ? delayMaxMilliseconds : baseDelayMilliseconds * exponent)
        let jittered = backOff / 2 + Int64(Double(backOff - backOff / 2) * min(max(jitter, 0), 1))
        guard let retryAfterSeconds else { return jittered }
        let asked = retryAfterSeconds.multipliedReportingOverflow(by: 1_000).overflow ? Int64.max : max(0, retryAfterSeconds) * 1_000
        guard asked <= delayMaxMilliseconds else { return nil }
        return max(asked, jittered)
    }

    /// `Retry-After` in whole seconds (RFC 9110 section 10.2.3); an HTTP-date is not sent by Domicile and reads as absent.
    static func retryAfterSeconds(_ header: String?) -> Int64? {
        guard let header, let seconds = Int64(header.trimmingCharacters(in: .whitespaces)), seconds >= 0 else { return nil }
        return seconds
    }
}
