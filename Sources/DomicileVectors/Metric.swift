/// How two vectors compare. Searches minimize a `distance`; responses carry
/// a `score` in the metric's own terms (see `score(distance:)`).
public enum Metric: String, Sendable, CaseIterable {
    /// Angle only: vectors are normalized when stored and queried, so the
    /// distance is 1 − cos θ and the score is cos θ (higher is closer).
    case cosine
    /// Euclidean: the distance is the squared L2 distance; the score is the
    /// L2 distance itself (lower is closer).
    case l2
    /// Inner product: the distance is −a·b; the score is a·b (higher is closer).
    case dot

    /// The largest component magnitude accepted.
    public static let componentMagnitudeMax: Float = 1e15

    /// The distance between a prepared query and a stored vector.
    @inline(__always)
    func distance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        switch self {
        case .cosine: return 1 - VectorKernels.dot(a, b, count: count)
        case .dot: return -VectorKernels.dot(a, b, count: count)
        case .l2: return VectorKernels.squaredDistance(a, b, count: count)
        }
    }

    /// The score a response reports for a distance.
    public func score(distance: Float) -> Float {
        switch self {
        case .cosine: return 1 - distance
        case .dot: return -distance
        case .l2: return distance.squareRoot()
        }
    }

    /// A vector as the index stores and compares it: checked for dimension
    /// and finiteness, and normalized for cosine. Throws on what no metric
    /// can compare.
    public func prepare(_ vector: [Float], dimension: Int) throws(VectorError) -> [Float] {
        guard vector.count == dimension else { throw .wrongDimension(expected: dimension, got: vector.count) }
        guard vector.allSatisfy(\.isFinite) else { throw .notFinite }
        // Bounded components keep every distance and score finite, even at 4096 dimensions.
        guard vector.allSatisfy({ abs($0) <= Self.componentMagnitudeMax }) else { throw .outOfRange(Self.componentMagnitudeMax) }
        guard self == .cosine else { return vector }
        let norm = vector.withUnsafeBufferPointer { VectorKernels.dot($0.baseAddress!, $0.baseAddress!, count: dimension) }.squareRoot()
        guard norm > 0, norm.isFinite else { throw .zeroNorm }
        return vector.map { $0 / norm }
    }
}

/// Why a vector or a query was refused. The messages never carry a value.
public enum VectorError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongDimension(expected: Int, got: Int)
    case notFinite
    case zeroNorm
    case outOfRange(Float)
    case capacityExhausted(Int)

    public var description: String {
        switch self {
        case .wrongDimension(let expected, let got): return "the collection holds \(expected)-dimensional vectors, not \(got)"
        case .notFinite: return "a vector component is NaN or infinite"
        case .zeroNorm: return "a zero vector has no direction, so cosine cannot compare it"
        case .outOfRange(let magnitude): return "a vector component exceeds ±\(magnitude)"
        case .capacityExhausted(let slots): return "the index holds at most \(slots) vectors"
        }
    }
}
