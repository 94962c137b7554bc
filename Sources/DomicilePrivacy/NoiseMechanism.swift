/// The noise of a release: discrete Laplace (pure ε) or discrete Gaussian
/// ((ε, δ), calibrated by the analytic Gaussian mechanism), added to
/// integers. Real values are first put on a grid of step 2^k — clamped,
/// rounded to the nearest multiple — and the rounding is charged: a
/// contribution may move by half a step, so the sensitivity in grid steps
/// is ⌈bound / step⌉ + 1, not bound / step.
public enum NoiseMechanism: String, Sendable, CaseIterable {
    case laplace
    case gaussian

    /// Denominator of the rational Laplace scale: the scale used is the
    /// requested one rounded up to a multiple of 2⁻²⁰ (never less noise).
    static let laplaceScaleDenominator: UInt64 = 1 << 20
    /// Denominator of the rational Gaussian variance, rounded up likewise.
    static let varianceDenominator: UInt64 = 1 << 10
    /// Noise scales above these many grid steps are refused. The Laplace
    /// scale is kept as a 64-bit numerator over 2²⁰; the Gaussian sampler's
    /// acceptance test squares |y|·b·t − a in 128 bits, which stays exact
    /// up to |y| ≈ 60σ at σ = 2²⁴ (a larger draw has probability < e⁻¹⁸⁰⁰).
    public static let laplaceScaleStepsMax = 1e9
    public static let gaussianScaleStepsMax = Double(1 << 24)

    /// Noise for an integer statistic with sensitivity `sensitivity` (in
    /// grid steps: L1 for Laplace, L2 for Gaussian), at (ε, δ).
    public struct Calibrated: Sendable, Equatable {
        public let mechanism: NoiseMechanism
        public let epsilon: Double
        public let delta: Double
        /// Laplace: the scale b; Gaussian: σ (in grid steps).
        public let scale: Double
        /// zCDP ρ of a Gaussian release (0 for Laplace, which is pure ε).
        public let rho: Double
        @usableFromInline let numerator: UInt64
        @usableFromInline let denominator: UInt64
    }

    public enum CalibrationError: Error, Equatable, CustomStringConvertible {
        case parameters(String)

        public var description: String {
            switch self { case .parameters(let message): return message }
        }
    }

    public func calibrate(epsilon: Double, delta: Double, sensitivity: Double) throws(CalibrationError) -> Calibrated {
        guard epsilon > 0, epsilon.isFinite, sensitivity > 0, sensitivity.isFinite else {
            throw .parameters("epsilon and the sensitivity must be positive")
        }
        switch self {
        case .laplace:
            let scale = sensitivity / epsilon
            guard scale <= Self.laplaceScaleStepsMax else { throw .parameters("the noise scale is too large; raise epsilon") }
            let numerator = UInt64((scale * Double(Self.laplaceScaleDenominator)).rounded(.up))
            return Calibrated(mechanism: self, epsilon: epsilon, delta: 0, scale: Double(numerator) / Double(Self.laplaceScaleDenominator),
                              rho: 0, numerator: numerator, denominator: Self.laplaceScaleDenominator)
        case .gaussian:
            guard delta > 0, delta < 1 else { throw .parameters("delta must be between 0 and 1 for the Gaussian mechanism") }
            let sigma = AnalyticGaussian.sigma(epsilon: epsilon, delta: delta, sensitivity: sensitivity)
            guard sigma.isFinite, sigma <= Self.gaussianScaleStepsMax else {
                throw .parameters("the noise scale is too large; raise epsilon or delta")
            }
            let numerator = UInt64((sigma * sigma * Double(Self.varianceDenominator)).rounded(.up))
            let variance = Double(numerator) / Double(Self.varianceDenominator)
            return Calibrated(mechanism: self, epsilon: epsilon, delta: delta, scale: variance.squareRoot(),
                              rho: ZCDP.rho(sensitivity: sensitivity, sigma: variance.squareRoot()),
                              numerator: numerator, denominator: Self.varianceDenominator)
        }
    }
}

extension NoiseMechanism.Calibrated {
    /// One draw of the noise.
    @inlinable
    public func sample(using random: inout some RandomNumberGenerator) -> Int64 {
        switch mechanism {
        case .laplace: return ExactSampler.discreteLaplace(scaleNumerator: numerator, scaleDenominator: denominator, using: &random)
        case .gaussian: return ExactSampler.discreteGaussian(varianceNumerator: numerator, varianceDenominator: denominator, using: &random)
        }
    }
}

/// A grid for real values: step 2^k with k chosen so that `bound` spans
/// about 2^`resolutionBits` steps. 2¹² steps make the rounding cost 1/4096
/// of the sensitivity (one step, charged) and keep noise scales in steps far
/// inside the samplers' range for any ε the API accepts.
public struct Grid: Sendable, Equatable {
    public static let resolutionBits = 12

    public let step: Double

    public init(bound: Double, resolutionBits: Int = Grid.resolutionBits) {
        precondition(bound > 0 && bound.isFinite, "a grid needs a positive bound")
        step = Double(sign: .plus, exponent: bound.exponent - resolutionBits, significand: 1)
    }

    /// The nearest grid point to `value`, in steps.
    public func steps(_ value: Double) -> Int64 { Int64((value / step).rounded()) }

    /// Sensitivity in steps of a contribution bounded by `bound` in
    /// magnitude, rounding charged.
    public func sensitivity(bound: Double) -> Double { (bound / step).rounded(.up) + 1 }

    public func value(_ steps: Int64) -> Double { Double(steps) * step }
}

/// Noise for embeddings that leave the region: clipped to an L2 norm, put
/// on a grid, and noised per component with the discrete Gaussian, σ from
/// the collection's (ε, δ) by the analytic Gaussian mechanism. The
/// sensitivity is that of replacing one vector by any other within the
/// norm, 2·clip, plus the grid's rounding, √d half-steps twice.
public enum EmbeddingNoise {
    public struct Noised: Sendable {
        public let vector: [Float]
        /// σ in the vector's own units.
        public let sigma: Double
    }

    public static func noised(_ vector: [Float], clipNorm: Double, epsilon: Double, delta: Double,
                              using random: inout some RandomNumberGenerator) throws(NoiseMechanism.CalibrationError) -> Noised {
        let norm = vector.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let factor = norm > clipNorm ? clipNorm / norm : 1
        // Rounding adds √d half-steps to the sensitivity: 0.5% at d = 384.
        let grid = Grid(bound: clipNorm)
        let sensitivity = 2 * clipNorm / grid.step + Double(vector.count).squareRoot()
        let noise = try NoiseMechanism.gaussian.calibrate(epsilon: epsilon, delta: delta, sensitivity: sensitivity)
        let noised = vector.map { component in
            Float(grid.value(grid.steps(Double(component) * factor) + noise.sample(using: &random)))
        }
        return Noised(vector: noised, sigma: noise.scale * grid.step)
    }
}
