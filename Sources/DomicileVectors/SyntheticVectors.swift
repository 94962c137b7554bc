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

    /// `count` vectors around `clusters` centres drawn uniformly in
    /// [−1, 1]^dimension, each coordinate offset by N(0, spread²).
    public static func clustered(count: Int, dimension: Int, clusters: Int, spread: Float = 0.35, seed: UInt64) -> SyntheticVectors {
        var random = SplitMix64(seed: seed)
        var centres = [Float](repeating: 0, count: clusters * dimension)
        for index in centres.indices { centres[index] = uniform(&random) * 2 - 1 }
        var values = [Float](repeating: 0, count: count * dimension)
        values.withUnsafeMutableBufferPointer { values in
            for row in 0..<count {
                let centre = Int(random.next() % UInt64(clusters)) * dimension
                for column in 0..<dimension {
                    values[row * dimension + column] = centres[centre + column] + spread * gaussian(&random)
                }
            }
        }
        return SyntheticVectors(dimension: dimension, values: values)
    }

    /// Queries near the data: points of the same clusters not in it.
    public static func queries(like data: SyntheticVectors, count: Int, seed: UInt64) -> SyntheticVectors {
        var random = SplitMix64(seed: seed)
        var values = [Float](repeating: 0, count: count * data.dimension)
        for row in 0..<count {
            let base = Int(random.next() % UInt64(data.count)) * data.dimension
            for column in 0..<data.dimension {
                values[row * data.dimension + column] = data.values[base + column] + 0.25 * gaussian(&random)
            }
        }
        return SyntheticVectors(dimension: data.dimension, values: values)
    }

    private static func uniform(_ random: inout SplitMix64) -> Float {
        Float(random.next() >> 40) * 0x1p-24
    }

    /// Box–Muller.
    private static func gaussian(_ random: inout SplitMix64) -> Float {
        let u = (Double(random.next() >> 11) + 1) * 0x1p-53
        let v = Double(random.next() >> 11) * 0x1p-53
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}
