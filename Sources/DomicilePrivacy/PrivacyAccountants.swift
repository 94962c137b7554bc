import Foundation

/// Zero-concentrated differential privacy (Bun and Steinke, 2016): ρ adds
/// up under composition; the Gaussian mechanism (continuous or discrete,
/// Canonne–Kamath–Steinke 2020) with L2 sensitivity Δ and scale σ is
/// Δ²/2σ²-zCDP.
public enum ZCDP {
    public static func rho(sensitivity: Double, sigma: Double) -> Double {
        sensitivity * sensitivity / (2 * sigma * sigma)
    }

    /// The smallest ε with ρ-zCDP ⇒ (ε, δ)-DP found over a grid of Rényi
    /// orders α (CKS20 corollary 13:
    /// ε = αρ + (ln(1/δ) + (α−1)·ln(1−1/α) − ln α)/(α−1)), and never more
    /// than the classic ρ + 2√(ρ ln(1/δ)).
    public static func epsilon(rho: Double, delta: Double) -> Double {
        precondition(rho >= 0 && delta > 0 && delta < 1, "zCDP conversion needs ρ ≥ 0 and δ in (0, 1)")
        guard rho > 0 else { return 0 }
        var best = rho + 2 * (rho * log(1 / delta)).squareRoot()
        var alpha = 1.001
        while alpha < 100_000 {
            let numerator: Double = log(1 / delta) + (alpha - 1) * log1p(-1 / alpha) - log(alpha)
            let epsilon: Double = alpha * rho + numerator / (alpha - 1)
            best = min(best, epsilon)
            alpha *= 1.01
        }
        return max(0, best)
    }
}

/// Rényi differential privacy of the sampled Gaussian mechanism (Mironov,
/// Talwar and Zhang, 2019), for charging DP-SGD runs: each step samples
/// each record with probability q and adds N(0, (σ·clip)²).
public enum RDP {
    /// The orders evaluated: fine steps above 1, integers to 63, then powers of two.
    public static let defaultOrders: [Double] = {
        let fine: [Double] = (1..<100).map { 1 + Double($0) / 10 }
        let integers: [Double] = (11..<64).map { Double($0) }
        return fine + integers + [128, 256, 512, 1_024]
    }()

    /// RDP ε(α) of `steps` compositions of the sampled Gaussian, per order.
    public static func sampledGaussian(sampleRate q: Double, noiseMultiplier sigma: Double, steps: Int,
                                       orders: [Double] = defaultOrders) -> [Double] {
        precondition((0...1).contains(q) && sigma > 0 && steps >= 0, "sampled Gaussian parameters out of range")
        return orders.map { alpha in Double(steps) * perStep(q: q, sigma: sigma, alpha: alpha) }
    }

    static func perStep(q: Double, sigma: Double, alpha: Double) -> Double {
        if q == 0 { return 0 }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        let logA = alpha == alpha.rounded() ? logAInteger(q: q, sigma: sigma, alpha: Int(alpha))
                                              : logAFractional(q: q, sigma: sigma, alpha: alpha)
        return logA / (alpha - 1)
    }

    static let seriesTermsMax = 1_000

    /// ln A_α for integer α: the binomial expansion
    /// A_α = Σ_k C(α, k) (1−q)^(α−k) q^k exp((k² − k) / 2σ²).
    static func logAInteger(q: Double, sigma: Double, alpha: Int) -> Double {
        var logA = -Double.infinity
        for k in 0...alpha {
            let sampling: Double = Double(k) * log(q) + Double(alpha - k) * log1p(-q)
            let term: Double = logBinomial(alpha, k) + sampling + Double(k * k - k) / (2 * sigma * sigma)
            logA = logAdd(logA, term)
        }
        return logA
    }

    /// ln A_α for fractional α: the two series of the paper's section 3.3,
    /// split at z₀ = σ² ln(1/q − 1) + 1/2. Terms are added in absolute
    /// value (the generalized binomial coefficients change sign past α + 1),
    /// which bounds A_α from above: the RDP charged is never less than the
    /// mechanism's. Summed until both series decrease and their terms fall
    /// e³⁰ below the total; a series that has not converged after
    /// `seriesTermsMax` terms gives +∞, so that order is left out rather
    /// than trusted.
    static func logAFractional(q: Double, sigma: Double, alpha: Double) -> Double {
        var logA0 = -Double.infinity, logA1 = -Double.infinity
        var lastS0 = -Double.infinity, lastS1 = -Double.infinity
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        let scale = 2.squareRoot() * sigma
        var coefficient = 1.0  // the generalized binomial C(α, i), built term by term
        for step in 0..<seriesTermsMax {
            let i = Double(step)
            if step > 0 { coefficient *= (alpha - i + 1) / i }
            let logCoefficient = log(abs(coefficient))
            let j = alpha - i
            let logT0: Double = logCoefficient + i * log(q) + j * log1p(-q)
            let logT1: Double = logCoefficient + j * log(q) + i * log1p(-q)
            let logS0: Double = logT0 + (i * i - i) / (2 * sigma * sigma) + log(0.5) + logErfc((i - z0) / scale)
            let logS1: Double = logT1 + (j * j - j) / (2 * sigma * sigma) + log(0.5) + logErfc((z0 - j) / scale)
            logA0 = logAdd(logA0, logS0)
            logA1 = logAdd(logA1, logS1)
            let total = logAdd(logA0, logA1)
            if logS0 < lastS0, logS1 < lastS1, max(logS0, logS1) < total - 30 { return total }
            lastS0 = logS0
            lastS1 = logS1
        }
        return .infinity
    }

    /// The smallest ε over the orders with RDP ⇒ (ε, δ)-DP, by the
    /// conversion of Balle et al. (2020) / Canonne et al. (2020):
    /// ε = ε(α) + ln(1 − 1/α) − ln(δ·α)/(α − 1). Returns ε and its order.
    public static func epsilon(orders: [Double], rdp: [Double], delta: Double) -> (epsilon: Double, order: Double) {
        precondition(delta > 0 && delta < 1 && orders.count == rdp.count, "RDP conversion needs δ in (0, 1)")
        var best = (epsilon: Double.infinity, order: orders.first ?? 0)
        for (alpha, value) in zip(orders, rdp) where alpha > 1.01 {
            let converted: Double = value + log1p(-1 / alpha) - log(delta * alpha) / (alpha - 1)
            let epsilon = delta * delta + expm1(-value) > 0 ? 0 : converted
            if epsilon < best.epsilon { best = (epsilon, alpha) }
        }
        return (max(0, best.epsilon), best.order)
    }

    static func logAdd(_ a: Double, _ b: Double) -> Double {
        let (high, low) = a >= b ? (a, b) : (b, a)
        if high == -.infinity { return -.infinity }
        return high + log1p(exp(low - high))
    }

    static func logBinomial(_ n: Int, _ k: Int) -> Double {
        lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
    }

    /// ln erfc(x), accurate where erfc underflows (an asymptotic series).
    static func logErfc(_ x: Double) -> Double {
        if x < 25 { return log(erfc(x)) }
        let r = 1 / (x * x)
        return -x * x - log(x) - 0.5 * log(Double.pi) + log1p(-r / 2 + 3 * r * r / 4 - 15 * r * r * r / 8)
    }
}

/// The analytic Gaussian mechanism (Balle and Wang, 2018): the exact
/// (ε, δ) of N(0, σ²) noise on an L2 sensitivity Δ, and the smallest σ for
/// a target — tighter than the classic σ = Δ√(2 ln(1.25/δ))/ε, and valid
/// for every ε > 0.
public enum AnalyticGaussian {
    /// δ(σ) = Φ(Δ/2σ − εσ/Δ) − e^ε Φ(−Δ/2σ − εσ/Δ).
    public static func delta(sigma: Double, epsilon: Double, sensitivity: Double) -> Double {
        let a = sensitivity / (2 * sigma), b = epsilon * sigma / sensitivity
        return max(0, normalCDF(a - b) - exp(epsilon) * normalCDF(-a - b))
    }

    /// The smallest σ (to a relative 1e-12) whose δ(σ) ≤ `delta`.
    public static func sigma(epsilon: Double, delta: Double, sensitivity: Double) -> Double {
        precondition(epsilon > 0 && delta > 0 && delta < 1 && sensitivity > 0, "analytic Gaussian parameters out of range")
        var low = 1e-6 * sensitivity, high = sensitivity
        while self.delta(sigma: high, epsilon: epsilon, sensitivity: sensitivity) > delta { high *= 2 }
        for _ in 0..<200 where (high - low) > 1e-12 * high {
            let middle = (low + high) / 2
            if self.delta(sigma: middle, epsilon: epsilon, sensitivity: sensitivity) > delta { low = middle } else { high = middle }
        }
        return high
    }

    static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.squareRoot()) }
}
