/// How a collection's vectors are indexed.
public enum IndexKind: Sendable, Equatable {
    /// Every search scans every eligible vector: exact, and the right choice
    /// for small collections.
    case flat
    case hnsw(HNSWSettings)
}

/// Hierarchical navigable small world graph parameters (Malkov and
/// Yashunin, 2018), named as in hnswlib so figures compare directly.
public struct HNSWSettings: Sendable, Equatable {
    /// Neighbours kept per node on the upper levels; level 0 keeps 2·m.
    /// Higher m: better recall at a given ef, more memory (4·2m bytes per
    /// vector on level 0) and slower inserts. 12–48 is the useful range.
    public var m: Int
    /// Candidates considered when linking a new vector. Higher: a better
    /// graph, slower inserts. Must be at least m.
    public var efConstruction: Int
    /// Candidates a search keeps by default (a query may ask for more); at
    /// least k is always used.
    public var ef: Int
    /// Seeds the level draw, so that the same inserts in the same order
    /// build the same graph (a restart rebuilds identical results).
    public var seed: UInt64

    public static let mRange = 2...100
    public static let efRange = 1...4_096

    public init(m: Int = 16, efConstruction: Int = 200, ef: Int = 64, seed: UInt64 = 0x646f_6d69_6369_6c65) {
        self.m = m
        self.efConstruction = efConstruction
        self.ef = ef
        self.seed = seed
    }

    /// Why these settings cannot build a graph, or nil.
    public var problem: String? {
        if !Self.mRange.contains(m) { return "m must be \(Self.mRange.lowerBound) to \(Self.mRange.upperBound)" }
        if !Self.efRange.contains(efConstruction) || efConstruction < m { return "ef_construction must be m to \(Self.efRange.upperBound)" }
        if !Self.efRange.contains(ef) { return "ef must be 1 to \(Self.efRange.upperBound)" }
        return nil
    }
}

/// When a search scans instead of walking the graph.
public struct SearchPlanner: Sendable, Equatable {
    /// Collections with at most this many live vectors are always scanned:
    /// a scan of 2 048 vectors costs about what a graph walk does.
    public var exactScanVectorsMax: Int
    /// Below this fraction of eligible vectors the scan (which only scores
    /// eligible vectors) beats a filtered walk, which must step over the
    /// ineligible ones to fill its candidate list. Measured crossover:
    /// docs/BENCHMARKS.md.
    public var exactScanEligibleFractionMax: Double
    /// Vectors sampled to estimate the eligible fraction.
    public var eligibilitySampleCount: Int

    public init(exactScanVectorsMax: Int = 2_048, exactScanEligibleFractionMax: Double = 0.10, eligibilitySampleCount: Int = 512) {
        self.exactScanVectorsMax = exactScanVectorsMax
        self.exactScanEligibleFractionMax = exactScanEligibleFractionMax
        self.eligibilitySampleCount = eligibilitySampleCount
    }
}

/// How a search was answered.
public enum SearchPlan: String, Sendable {
    case exact
    case graph
}

/// One result: the vector's label and its score (see `Metric.score`).
public struct SearchHit: Sendable, Equatable {
    public let label: String
    public let score: Float

    public init(label: String, score: Float) {
        self.label = label
        self.score = score
    }
}

public struct SearchResult: Sendable {
    public let hits: [SearchHit]
    public let plan: SearchPlan
}
