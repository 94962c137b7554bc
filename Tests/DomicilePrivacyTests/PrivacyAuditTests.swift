import DomicileModel
import Foundation
import XCTest
@testable import DomicilePrivacy

/// Clopper–Pearson confidence bounds for a binomial proportion, through the
/// regularized incomplete beta function (continued fraction, modified Lentz).
enum ClopperPearson {
    /// I_x(a, b).
    static func incompleteBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        if x > (a + 1) / (a + b + 2) { return 1 - incompleteBeta(1 - x, b, a) }
        let front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)) / a
        var f = 1.0, c = 1.0, d = 0.0
        for i in 0...400 {
            let m = Double(i / 2)
            let numerator: Double
            if i == 0 { numerator = 1 }
            else if i % 2 == 0 { numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)) }
            else { numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)) }
            d = 1 + numerator * d
            d = abs(d) < 1e-300 ? 1e-300 : d
            d = 1 / d
            c = 1 + numerator / c
            c = abs(c) < 1e-300 ? 1e-300 : c
            let step = c * d
            f *= step
            if abs(1 - step) < 1e-14 { break }
        }
        return front * (f - 1)
    }

    /// The x with I_x(a, b) = p, by bisection.
    static func betaQuantile(_ p: Double, _ a: Double, _ b: Double) -> Double {
        var low = 0.0, high = 1.0
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if incompleteBeta(middle, a, b) < p { low = middle } else { high = middle }
        }
        return (low + high) / 2
    }

    /// One-sided bounds at confidence 1 − α for k successes in n trials.
    static func lower(_ k: Int, _ n: Int, alpha: Double) -> Double { k == 0 ? 0 : betaQuantile(alpha, Double(k), Double(n - k + 1)) }
    static func upper(_ k: Int, _ n: Int, alpha: Double) -> Double { k == n ? 1 : betaQuantile(1 - alpha, Double(k + 1), Double(n - k)) }
}

/// An empirical privacy audit of the count mechanism: run it many times on
/// neighbouring datasets (counts c and c + 1), and bound ε from below with
/// Clopper–Pearson intervals on the rate of an output event. For a correct
/// mechanism the lower bound stays at or under the claimed ε; for one with
/// half the noise it exceeds it — the audit can fail.
final class PrivacyAuditTests: XCTestCase {
    static let trials = 100_000
    static let alpha = 0.001

    /// Max over thresholds T of ln(P̲[M(D′) ≥ T] / P̄[M(D) ≥ T]), with 99.9% one-sided bounds.
    func epsilonLowerBound(epsilon: Double, noiseEpsilon: Double, mechanism: NoiseMechanism, seed: UInt64) throws -> Double {
        let noise = try mechanism.calibrate(epsilon: noiseEpsilon, delta: 1e-6, sensitivity: 1)
        var random = SeededRandom(seed: seed)
        let count: Int64 = 1_000
        let outputs = (0..<Self.trials).map { _ in count + noise.sample(using: &random) }
        let neighbour = (0..<Self.trials).map { _ in count + 1 + noise.sample(using: &random) }
        var best = 0.0
        for threshold in (count - 2)...(count + 4) {
            let k0 = outputs.filter { $0 >= threshold }.count, k1 = neighbour.filter { $0 >= threshold }.count
            let p0 = ClopperPearson.upper(k0, Self.trials, alpha: Self.alpha), p1 = ClopperPearson.lower(k1, Self.trials, alpha: Self.alpha)
            if p0 > 0, p1 > 0 { best = max(best, log(p1 / p0)) }
        }
        return best
    }

    func test_clopperPearson_boundsContainTheEstimate() {
        XCTAssertEqual(ClopperPearson.incompleteBeta(0.5, 2, 2), 0.5, accuracy: 1e-12)
        XCTAssertEqual(ClopperPearson.incompleteBeta(0.3, 1, 1), 0.3, accuracy: 1e-12)
        let lower = ClopperPearson.lower(500, 1_000, alpha: 0.025), upper = ClopperPearson.upper(500, 1_000, alpha: 0.025)
        XCTAssertEqual(lower, 0.4685, accuracy: 0.001)
        XCTAssertEqual(upper, 0.5315, accuracy: 0.001)
    }

    func test_audit_laplaceCount_staysWithinItsClaimedEpsilon_andCatchesHalfTheNoise() throws {
        let claimed = 1.0
        let honest = try epsilonLowerBound(epsilon: claimed, noiseEpsilon: claimed, mechanism: .laplace, seed: 41)
        XCTAssertLessThanOrEqual(honest, claimed, "the real mechanism leaks more than it claims")
        XCTAssertGreaterThan(honest, 0.8 * claimed, "the audit is too weak to mean anything")
        let underNoised = try epsilonLowerBound(epsilon: claimed, noiseEpsilon: 2 * claimed, mechanism: .laplace, seed: 42)
        XCTAssertGreaterThan(underNoised, claimed, "the audit did not catch a mechanism with half the noise")
    }

    func test_audit_gaussianCount_staysWithinItsClaimedEpsilon() throws {
        // For (ε, δ) a threshold event may exceed e^ε by δ; at these rates δ = 1e-6 is negligible.
        let claimed = 1.0
        let honest = try epsilonLowerBound(epsilon: claimed, noiseEpsilon: claimed, mechanism: .gaussian, seed: 43)
        XCTAssertLessThanOrEqual(honest, claimed)
        let underNoised = try epsilonLowerBound(epsilon: claimed, noiseEpsilon: 3 * claimed, mechanism: .gaussian, seed: 44)
        XCTAssertGreaterThan(underNoised, claimed)
    }
}

final class PrivacyAccountantTests: XCTestCase {
    func test_analyticGaussian_meetsItsTarget_andBeatsTheClassicCalibration() {
        for (epsilon, delta) in [(0.1, 1e-5), (0.5, 1e-6), (1.0, 1e-5), (4.0, 1e-6), (10.0, 1e-9)] {
            let sigma = AnalyticGaussian.sigma(epsilon: epsilon, delta: delta, sensitivity: 1)
            XCTAssertLessThanOrEqual(AnalyticGaussian.delta(sigma: sigma, epsilon: epsilon, sensitivity: 1), delta * (1 + 1e-9))
            XCTAssertGreaterThan(AnalyticGaussian.delta(sigma: sigma * 0.999, epsilon: epsilon, sensitivity: 1), delta, "σ is not the smallest")
            if epsilon < 1 {
                XCTAssertLessThan(sigma, (2 * log(1.25 / delta)).squareRoot() / epsilon)
            }
            // Sensitivity scales σ linearly.
            XCTAssertEqual(AnalyticGaussian.sigma(epsilon: epsilon, delta: delta, sensitivity: 3) / sigma, 3, accuracy: 1e-6)
        }
    }

    func test_calibration_refusesScalesBeyondTheSamplersRange_insteadOfOverflowing() {
        XCTAssertThrowsError(try NoiseMechanism.gaussian.calibrate(epsilon: 1e-9, delta: 1e-12, sensitivity: 1))
        XCTAssertThrowsError(try NoiseMechanism.gaussian.calibrate(epsilon: 1e-300, delta: 1e-300, sensitivity: 1))
        XCTAssertThrowsError(try NoiseMechanism.laplace.calibrate(epsilon: 1e-300, delta: 0, sensitivity: 1))
        XCTAssertNoThrow(try NoiseMechanism.gaussian.calibrate(epsilon: 0.01, delta: 1e-9, sensitivity: 1e4))
    }

    func test_zcdp_conversion_isAtMostTheClassicBound() {
        for rho in [0.001, 0.05, 0.5, 2.0] {
            let classic = rho + 2 * (rho * log(1 / 1e-6)).squareRoot()
            let epsilon = ZCDP.epsilon(rho: rho, delta: 1e-6)
            XCTAssertLessThanOrEqual(epsilon, classic)
            XCTAssertGreaterThan(epsilon, rho)
        }
        XCTAssertEqual(ZCDP.rho(sensitivity: 1, sigma: 2), 0.125)
    }

    func test_rdp_fullBatch_isTheGaussiansClosedForm_andIntegerAndFractionalOrdersAgree() {
        // q = 1: α / 2σ² per step.
        let full = RDP.sampledGaussian(sampleRate: 1, noiseMultiplier: 2, steps: 3, orders: [2, 5.5])
        XCTAssertEqual(full[0], 3 * 2 / 8, accuracy: 1e-12)
        XCTAssertEqual(full[1], 3 * 5.5 / 8, accuracy: 1e-12)
        // The fractional series at an integer order equals the binomial expansion.
        for alpha in [2.0, 3.0, 8.0, 20.0] {
            let integer = RDP.logAInteger(q: 0.01, sigma: 1.1, alpha: Int(alpha))
            let fractional = RDP.logAFractional(q: 0.01, sigma: 1.1, alpha: alpha)
            XCTAssertEqual(integer, fractional, accuracy: 1e-6 * max(1, abs(integer)), "order \(alpha)")
        }
        // More steps, more ε; more noise, less.
        let base = RDP.epsilon(orders: RDP.defaultOrders, rdp: RDP.sampledGaussian(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 1_000),
                               delta: 1e-5).epsilon
        let longer = RDP.epsilon(orders: RDP.defaultOrders, rdp: RDP.sampledGaussian(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 4_000),
                                 delta: 1e-5).epsilon
        let noisier = RDP.epsilon(orders: RDP.defaultOrders, rdp: RDP.sampledGaussian(sampleRate: 0.01, noiseMultiplier: 2, steps: 1_000),
                                  delta: 1e-5).epsilon
        XCTAssertLessThan(base, longer)
        XCTAssertLessThan(noisier, base)
        XCTAssertGreaterThan(base, 0.5)
        XCTAssertLessThan(base, 3)
    }

    func test_embeddingNoise_clipsAndNoises_withTheCalibratedSigma() throws {
        var random = SeededRandom(seed: 5)
        let vector: [Float] = (0..<64).map { Float($0 % 7) - 3 }
        let norm = vector.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
        var sum = [Double](repeating: 0, count: 64)
        let runs = 400
        var sigma = 0.0
        for _ in 0..<runs {
            let noised = try EmbeddingNoise.noised(vector, clipNorm: 1, epsilon: 4, delta: 1e-6, using: &random)
            sigma = noised.sigma
            for (index, value) in noised.vector.enumerated() { sum[index] += Double(value) }
        }
        // The mean of the noised vectors is the clipped vector (to about 4σ/√runs).
        for index in 0..<64 {
            XCTAssertEqual(sum[index] / Double(runs), Double(vector[index]) / norm, accuracy: 4 * sigma / Double(runs).squareRoot() + 1e-3)
        }
        // σ is the analytic Gaussian's for a sensitivity of 2 · clip (plus the grid's rounding).
        let analytic = AnalyticGaussian.sigma(epsilon: 4, delta: 1e-6, sensitivity: 2)
        XCTAssertEqual(sigma, analytic, accuracy: analytic * 0.01)
    }
}
