import Foundation

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
    /// Seeds the level draw, so that the same inserts in the same order, on
    /// one thread, build the same graph (a restart that rebuilds a collection
    /// smaller than a load batch gets identical results; a larger one is
    /// linked on every core, an equally good graph but not the same one).
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

/// When a search scans instead of walking the graph: whichever the cost
/// model expects to be cheaper, from the collection's size, the dimension,
/// the walk's ef and the number of vectors eligible now.
public struct SearchPlanner: Sendable, Equatable {
    /// Collections with at most this many live vectors are always scanned:
    /// a scan of 2 048 vectors costs about what a graph walk does.
    public var exactScanVectorsMax: Int
    /// Slots sampled (in runs of eight adjacent deadlines) to estimate the
    /// eligible count when the maintained counts cannot decide.
    public var eligibilitySampleCount: Int
    /// What scans and walks cost on this machine.
    public var costs: SearchCosts

    public init(exactScanVectorsMax: Int = 2_048, eligibilitySampleCount: Int = 512, costs: SearchCosts = SearchCosts()) {
        self.exactScanVectorsMax = exactScanVectorsMax
        self.eligibilitySampleCount = eligibilitySampleCount
        self.costs = costs
    }

    /// Walks the graph whenever a vector is eligible, whatever it costs: for
    /// measuring and testing the walk (a node never uses it).
    public static let walkAlways = SearchPlanner(exactScanVectorsMax: 0, costs: SearchCosts(scanSlot: .infinity))

    /// The cheaper plan for a search over `slots` slots holding `live`
    /// vectors of which `eligible` are eligible, walking with `ef` candidates.
    public func plan(slots: Int, live: Int, eligible: Int, dimension: Int, ef: Int) -> SearchPlan {
        guard live > exactScanVectorsMax, eligible > 0 else { return .exact }
        let scan = costs.scanNanos(slots: slots, eligible: eligible, dimension: dimension)
        let walk = costs.walkNanos(live: live, eligible: eligible, dimension: dimension, ef: ef)
        return scan <= walk ? .exact : .graph
    }
}

/// The cost model of the two plans, in nanoseconds per query on one core.
/// The defaults were measured on the development machine by `domicile bench
/// planner` (docs/BENCHMARKS.md, "Cost-based planner"); a deployment on
/// other hardware may measure its own.
///
/// - An exact scan reads every slot's deadline (`scanSlot` each) and scores
///   the eligible vectors (`scanVector + scanVectorPerDimension · d` each).
/// - A filtered walk with `ef` candidates and a fraction `p` of the live
///   vectors eligible costs `ef · p^(−walkFilterExponent) · (walkPerEF +
///   walkPerEFPerDimension · d)`: unfiltered it scores a number of vectors
///   proportional to ef, and as fewer are eligible it must cross more
///   ineligible ones before it holds ef results (exponent fitted: below 1,
///   because the ineligible vectors it crosses also steer it).
public struct SearchCosts: Sendable, Equatable {
    public var scanSlot: Double
    public var scanVector: Double
    public var scanVectorPerDimension: Double
    public var walkPerEF: Double
    public var walkPerEFPerDimension: Double
    public var walkFilterExponent: Double

    public init(scanSlot: Double = 0.7, scanVector: Double = 26, scanVectorPerDimension: Double = 0.23,
                walkPerEF: Double = 870, walkPerEFPerDimension: Double = 5.4, walkFilterExponent: Double = 0.92) {
        self.scanSlot = scanSlot
        self.scanVector = scanVector
        self.scanVectorPerDimension = scanVectorPerDimension
        self.walkPerEF = walkPerEF
        self.walkPerEFPerDimension = walkPerEFPerDimension
        self.walkFilterExponent = walkFilterExponent
    }

    public func scanNanos(slots: Int, eligible: Int, dimension: Int) -> Double {
        Double(slots) * scanSlot + Double(eligible) * (scanVector + scanVectorPerDimension * Double(dimension))
    }

    public func walkNanos(live: Int, eligible: Int, dimension: Int, ef: Int) -> Double {
        let fraction = min(max(Double(eligible) / Double(max(live, 1)), 1e-9), 1)
        return Double(ef) * pow(1 / fraction, walkFilterExponent) * (walkPerEF + walkPerEFPerDimension * Double(dimension))
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
