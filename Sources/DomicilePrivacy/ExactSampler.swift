/// Exact samplers for differential privacy: integer arithmetic over a
/// uniform source, no floating point anywhere a draw is decided (Canonne,
/// Kamath and Steinke, "The Discrete Gaussian for Differential Privacy",
/// 2020, algorithms 1–3). Floating-point noise (`log` of a `Double` uniform)
/// leaks through the gaps between representable values (Mironov, 2012);
/// these samplers have none.
///
/// Parameters are rationals of unsigned integers; intermediate products use
/// 128 bits. The generator is passed in: the node passes OpenSSL's CSPRNG,
/// tests a seeded one. The samplers are inlinable so that each caller gets
/// them specialized for its generator (a generic draw is several times slower).
public enum ExactSampler {
    /// True with probability numerator / denominator (numerator ≤ denominator).
    @inlinable
    public static func bernoulli(_ numerator: UInt128, _ denominator: UInt128, using random: inout some RandomNumberGenerator) -> Bool {
        precondition(denominator > 0 && numerator <= denominator, "a Bernoulli probability is in [0, 1]")
        // 64-bit draws when the denominator fits: the common case, several times faster than 128-bit ones.
        if denominator <= UInt128(UInt64.max) {
            return UInt128(UInt64.random(in: 0..<UInt64(denominator), using: &random)) < numerator
        }
        return UInt128.random(in: 0..<denominator, using: &random) < numerator
    }

    /// True with probability exp(−numerator / denominator) (algorithm 1).
    @inlinable
    public static func bernoulliExp(_ numerator: UInt128, _ denominator: UInt128, using random: inout some RandomNumberGenerator) -> Bool {
        precondition(denominator > 0, "exp(−γ) needs a positive denominator")
        var remaining = numerator
        // exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)).
        while remaining > denominator {
            guard bernoulliExpAtMostOne(denominator, denominator, using: &random) else { return false }
            remaining -= denominator
        }
        return bernoulliExpAtMostOne(remaining, denominator, using: &random)
    }

    /// exp(−γ) for γ = n/d ≤ 1: draw A_k ~ Bernoulli(γ/k) for k = 1, 2, …
    /// until one fails; the count is odd with probability exp(−γ).
    @usableFromInline
    static func bernoulliExpAtMostOne(_ numerator: UInt128, _ denominator: UInt128,
                                              using random: inout some RandomNumberGenerator) -> Bool {
        var k: UInt128 = 1
        while bernoulli(numerator, denominator * k, using: &random) { k += 1 }
        return k % 2 == 1
    }

    /// An integer Y with P(Y = y) ∝ exp(−|y| · s / t): the discrete Laplace
    /// (two-sided geometric) distribution of scale t/s (algorithm 2).
    @inlinable
    public static func discreteLaplace(scaleNumerator t: UInt64, scaleDenominator s: UInt64,
                                       using random: inout some RandomNumberGenerator) -> Int64 {
        precondition(t > 0 && s > 0, "the discrete Laplace needs a positive scale")
        while true {
            let u = UInt64.random(in: 0..<t, using: &random)
            guard bernoulliExp(UInt128(u), UInt128(t), using: &random) else { continue }
            var v: UInt64 = 0
            while bernoulliExp(1, 1, using: &random) { v += 1 }
            let x = UInt128(u) + UInt128(t) * UInt128(v)
            let y = x / UInt128(s)
            let negative = Bool.random(using: &random)
            if negative && y == 0 { continue }
            guard y <= UInt128(Int64.max) else { continue }
            return negative ? -Int64(y) : Int64(y)
        }
    }

    /// An integer Y with P(Y = y) ∝ exp(−y² / 2σ²), σ² = numerator /
    /// denominator: the discrete Gaussian (algorithm 3), by rejection from
    /// a discrete Laplace of scale t = ⌊σ⌋ + 1.
    @inlinable
    public static func discreteGaussian(varianceNumerator a: UInt64, varianceDenominator b: UInt64,
                                        using random: inout some RandomNumberGenerator) -> Int64 {
        precondition(a > 0 && b > 0, "the discrete Gaussian needs a positive variance")
        let t = integerSquareRoot(a / b) + 1
        while true {
            let y = discreteLaplace(scaleNumerator: t, scaleDenominator: 1, using: &random)
            // Accept with probability exp(−(|y| − σ²/t)² / 2σ²) = exp(−(|y|·b·t − a)² / (2·a·b·t²)).
            let magnitude = UInt128(y.magnitude) * UInt128(b) * UInt128(t)
            let difference = magnitude > UInt128(a) ? magnitude - UInt128(a) : UInt128(a) - magnitude
            let (square, overflow) = difference.multipliedReportingOverflow(by: difference)
            if overflow { continue }  // acceptance probability below exp(−2⁶⁰): a rejection
            if bernoulliExp(square, 2 * UInt128(a) * UInt128(b) * UInt128(t) * UInt128(t), using: &random) { return y }
        }
    }

    /// ⌊√n⌋.
    @usableFromInline
    static func integerSquareRoot(_ n: UInt64) -> UInt64 {
        guard n > 1 else { return n }
        func squareExceeds(_ x: UInt64) -> Bool {
            let (square, overflow) = x.multipliedReportingOverflow(by: x)
            return overflow || square > n
        }
        var x = min(UInt64(Double(n).squareRoot()), UInt64(UInt32.max))
        while squareExceeds(x) { x -= 1 }
        while !squareExceeds(x + 1) { x += 1 }
        return x
    }
}
