import DomicileModel
import Foundation
import XCTest
@testable import DomicilePrivacy

/// Goodness of fit against the exact probability mass functions. Each test
/// is a chi-square test at significance 1e-6 (the false-failure rate of
/// one run were the seed drawn at random; with the fixed seed the outcome
/// is deterministic). Bins with an expected count below 20 are merged
/// into the tails.
final class ExactSamplerTests: XCTestCase {
    static let samples = 100_000

    /// Pearson's statistic over y in `range` (the tails merged into the end
    /// bins) and its critical value at 1e-6 (Wilson–Hilferty).
    func assertFits(_ draw: (inout SeededRandom) -> Int64, pmf: (Int64) -> Double, seed: UInt64, name: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        var random = SeededRandom(seed: seed)
        var observed: [Int64: Int] = [:]
        for _ in 0..<Self.samples { observed[draw(&random), default: 0] += 1 }
        // Bins: every y whose expected count is at least 20, plus the two tails.
        var low: Int64 = 0, high: Int64 = 0
        while Double(Self.samples) * pmf(low - 1) >= 20 { low -= 1 }
        while Double(Self.samples) * pmf(high + 1) >= 20 { high += 1 }
        var statistic = 0.0
        var inside = 0.0
        for y in low...high {
            let expected = Double(Self.samples) * pmf(y)
            inside += pmf(y)
            let count = Double(observed[y] ?? 0)
            statistic += (count - expected) * (count - expected) / expected
        }
        let tails = observed.filter { $0.key < low || $0.key > high }.values.reduce(0, +)
        let tailExpected = Double(Self.samples) * max(1 - inside, 1e-12)
        statistic += (Double(tails) - tailExpected) * (Double(tails) - tailExpected) / tailExpected
        let degrees = Double(high - low + 1)
        // Wilson–Hilferty: χ²₁₋α(k) ≈ k (1 − 2/9k + z √(2/9k))³, z(1e-6) = 4.7534.
        let critical = degrees * pow(1 - 2 / (9 * degrees) + 4.7534 * (2 / (9 * degrees)).squareRoot(), 3)
        XCTAssertLessThan(statistic, critical, "\(name): χ² \(statistic) over \(Int(degrees)) bins", file: file, line: line)
    }

    func test_bernoulliExp_matchesExpOfMinusGamma() {
        var random = SeededRandom(seed: 1)
        for (numerator, denominator) in [(UInt128(0), UInt128(1)), (1, 3), (1, 1), (5, 2), (7, 1)] {
            let p = exp(-Double(numerator) / Double(denominator))
            let trials = 100_000
            var hits = 0
            for _ in 0..<trials where ExactSampler.bernoulliExp(numerator, denominator, using: &random) { hits += 1 }
            // Six standard deviations.
            let tolerance = 6 * (p * (1 - p) / Double(trials)).squareRoot() + 1e-9
            XCTAssertEqual(Double(hits) / Double(trials), p, accuracy: tolerance, "exp(-\(numerator)/\(denominator))")
        }
    }

    func test_discreteLaplace_fitsItsMassFunction() {
        for (t, s) in [(UInt64(1), UInt64(1)), (3, 1), (7, 2), (20, 1)] {
            let b = Double(t) / Double(s)
            let normalizer = (1 - exp(-1 / b)) / (1 + exp(-1 / b))
            assertFits({ ExactSampler.discreteLaplace(scaleNumerator: t, scaleDenominator: s, using: &$0) },
                       pmf: { normalizer * exp(-Double($0.magnitude) / b) }, seed: t * 31 + s, name: "discrete Laplace \(t)/\(s)")
        }
    }

    func test_discreteGaussian_fitsItsMassFunction() {
        for (a, b) in [(UInt64(1), UInt64(1)), (9, 4), (25, 1), (400, 1)] {
            let variance = Double(a) / Double(b)
            let normalizer = (-2_000...2_000).reduce(0.0) { $0 + exp(-Double($1 * $1) / (2 * variance)) }
            assertFits({ ExactSampler.discreteGaussian(varianceNumerator: a, varianceDenominator: b, using: &$0) },
                       pmf: { exp(-Double($0 * $0) / (2 * variance)) / normalizer }, seed: a * 17 + b, name: "discrete Gaussian σ²=\(a)/\(b)")
        }
    }

    /// The test can fail: a sampler of the wrong scale does not fit.
    func test_goodnessOfFit_rejectsTheWrongDistribution() {
        let b = 3.0
        let normalizer = (1 - exp(-1 / b)) / (1 + exp(-1 / b))
        var random = SeededRandom(seed: 9)
        var observed: [Int64: Int] = [:]
        for _ in 0..<Self.samples { observed[ExactSampler.discreteLaplace(scaleNumerator: 4, scaleDenominator: 1, using: &random), default: 0] += 1 }
        var statistic = 0.0
        for y in Int64(-15)...15 {
            let expected = Double(Self.samples) * normalizer * exp(-Double(y.magnitude) / b)
            let count = Double(observed[y] ?? 0)
            statistic += (count - expected) * (count - expected) / expected
        }
        XCTAssertGreaterThan(statistic, 200, "scale 4 passed for scale 3")
    }

    func test_integerSquareRoot() {
        for n: UInt64 in [0, 1, 2, 3, 4, 15, 16, 17, 1 << 40, (1 << 40) + 1, UInt64.max] {
            let root = ExactSampler.integerSquareRoot(n)
            XCTAssertLessThanOrEqual(root.multipliedFullWidth(by: root).high == 0 ? root * root : UInt64.max, n)
            let next = root + 1
            let (square, overflow) = next.multipliedReportingOverflow(by: next)
            XCTAssertTrue(overflow || square > n, "⌊√\(n)⌋")
        }
    }
}
