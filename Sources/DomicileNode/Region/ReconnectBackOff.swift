/// How long a channel waits before redialing a peer: base · 2^(failures−1),
/// capped at `max`, then a uniform draw in [½, 1] of it from the injected
/// random source, so that a region's nodes do not redial a restarted peer
/// in step.
struct ReconnectBackOff {
    let baseMilliseconds: Int64
    let maxMilliseconds: Int64

    /// The wait after `failures` (≥ 1) failed attempts in a row.
    func delay(afterFailures failures: Int, using random: inout any RandomNumberGenerator) -> Int64 {
        precondition(failures >= 1, "a back-off follows a failure")
        let exponent = Int64(min(failures - 1, 20))
        let ceiling = min(maxMilliseconds, baseMilliseconds << exponent)
        return ceiling / 2 + Int64.random(in: 0...(ceiling - ceiling / 2), using: &random)
    }
}
