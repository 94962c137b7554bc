import DomicileModel
import Foundation

/// Seeded, clustered vectors for tests and benchmarks: real embeddings are
/// clustered, and uniform noise flatters a graph index (every point is
/// about as far from every other). Gaussian clusters around uniform centres.
public struct SyntheticVectors: Sendable {
    public let dimension: Int
    /// All vectors, row after row.
    public let values: [Float]

    public var count: Int { values.count / dimension }

    public subscript(index: Int) -> [Float] {
        Array(values[index * dimension..<(index + 1) * dimension])
    }

    /// `count` vectors in `clusters` clusters. Each vector is its cluster's
    /// centre (uniform in [−1, 1]^dimension) plus a shared random projection
    /// of a `latentDimension`-dimensional N(0, spread²) point plus a little
    /// isotropic noise: clusters of low intrinsic dimension, as embeddings
    /// of real items are.
    public static func clustered(count: Int, dimension: Int, clusters: Int, latentDimension: Int = 24, spread: Float = 0.35,
                                 seed: UInt64) -> SyntheticVectors {
        var random = SeededRandom(seed: seed)
        var centres = [Float](repeating: 0, count: clusters * dimension)
        for index in centres.indices { centres[index] = uniform(&random) * 2 - 1 }
        // Columns scaled by 1/√latent so the projected offset has about `spread` per coordinate.
        let scale = 1 / Float(latentDimension).squareRoot()
        var projection = [Float](repeating: 0, count: latentDimension * dimension)
        for index in projection.indices { projection[index] = gaussian(&random) * scale }
        var values = [Float](repeating: 0, count: count * dimension)
        var latent = [Float](repeating: 0, count: latentDimension)
        values.withUnsafeMutableBufferPointer { values in
            for row in 0..<count {
                let centre = Int(random.next() % UInt64(clusters)) * dimension
                for index in 0..<latentDimension { latent[index] = spread * gaussian(&random) }
                for column in 0..<dimension {
                    var value = centres[centre + column] + 0.2 * spread * gaussian(&random)
                    for index in 0..<latentDimension { value += projection[index * dimension + column] * latent[index] }
                    values[row * dimension + column] = value
                }
            }
        }
        return SyntheticVectors(dimension: dimension, values: values)
    }

    /// The first `count` rows, and the rest: queries drawn from the same
    /// distribution as the data but not in it.
    public func split(at count: Int) -> (data: SyntheticVectors, queries: SyntheticVectors) {
        (SyntheticVectors(dimension: dimension, values: Array(values[..<(count * dimension)])),
         SyntheticVectors(dimension: dimension, values: Array(values[(count * dimension)...])))
    }

    /// Every row scaled to unit length (a zero row stays zero): on unit
    /// vectors l2 ranks neighbours as cosine does.
    public func normalized() -> SyntheticVectors {
        var values = values
        for row in 0..<count {
            let range = row * dimension..<(row + 1) * dimension
            let norm = values[range].reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 0 { for index in range { values[index] /= norm } }
        }
        return SyntheticVectors(dimension: dimension, values: values)
    }

    private static func uniform(_ random: inout SeededRandom) -> Float {
        Float(random.next() >> 40) * 0x1p-24
    }

    /// Box–Muller.
    private static func gaussian(_ random: inout SeededRandom) -> Float {
        let u = (Double(random.next() >> 11) + 1) * 0x1p-53
        let v = Double(random.next() >> 11) * 0x1p-53
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}
