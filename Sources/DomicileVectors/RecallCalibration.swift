/// The smallest search width (`ef`) at which an HNSW index reaches a target
/// recall@k, measured on the index's own vectors: each sampled vector is a
/// query, its exact k nearest others (itself excluded) the truth, and the
/// graph walk at each width of a ladder is scored against them
/// (docs/DECISIONS.md, "Recall-targeted search").
public struct RecallCalibration: Sendable, Equatable {
    /// The width chosen: the smallest of `ladder` whose recall reached the
    /// target (the widest when none did).
    public let ef: Int
    /// Mean recall@k over the sample at `ef`.
    public let estimatedRecall: Double
    /// Queries measured.
    public let sample: Int
    /// Live vectors in the index when the measurement began.
    public let vectors: Int

    public static let k = 10
    public static let sampleSize = 200
    public static let targetRange = 0.5...0.999
    /// The widths tried, smallest first (searched by bisection: recall grows with ef).
    public static let ladder = [10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1_024, 1_536,
                                2_048, 3_072, 4_096]

    public init(ef: Int, estimatedRecall: Double, sample: Int, vectors: Int) {
        self.ef = ef
        self.estimatedRecall = estimatedRecall
        self.sample = sample
        self.vectors = vectors
    }

    /// Measures `index` (an HNSW index with more than k vectors; nil
    /// otherwise) for `target`, ignoring eligibility (the graph as built),
    /// over the widths of `ladder` (ascending).
    public static func measure(_ index: VectorIndex, target: Double, sampleSize: Int = sampleSize, seed: UInt64,
                               ladder: [Int] = ladder) -> RecallCalibration? {
        guard case .hnsw = index.kind, !ladder.isEmpty else { return nil }
        let vectors = index.count
        let queries = index.sample(sampleSize, seed: seed)
        guard index.count > k, !queries.isEmpty else { return nil }
        let everyone = Int64.min
        // Each query's exact k nearest others.
        let truth: [Set<String>] = queries.map { query in
            let hits = (try? index.exactSearch(query.vector, k: k + 1, now: everyone)) ?? []
            return Set(hits.lazy.map(\.label).filter { $0 != query.label }.prefix(k))
        }
        func recall(_ ef: Int) -> Double {
            var found = 0, wanted = 0
            for (query, expected) in zip(queries, truth) {
                let hits = (try? index.graphSearch(query.vector, k: k + 1, ef: ef, now: everyone)) ?? []
                found += hits.lazy.map(\.label).filter { $0 != query.label }.prefix(k).filter(expected.contains).count
                wanted += expected.count
            }
            return wanted == 0 ? 1 : Double(found) / Double(wanted)
        }
        // Bisection over the ladder for the first width reaching the target.
        var low = 0, high = ladder.count - 1
        var best = (ef: ladder[high], recall: recall(ladder[high]))
        while low < high {
            let middle = (low + high) / 2
            let measured = recall(ladder[middle])
            if measured >= target {
                best = (ladder[middle], measured)
                high = middle
            } else {
                low = middle + 1
            }
        }
        return RecallCalibration(ef: best.ef, estimatedRecall: best.recall, sample: queries.count, vectors: vectors)
    }
}
