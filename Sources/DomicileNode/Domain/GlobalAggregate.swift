import DomicileModel

/// The global view of an aggregate: every region's latest release of one
/// name, combined (docs/DECISIONS.md, "The global view of an aggregate").
///
/// - Counts, sums and histograms add up (per category); means are averaged
///   without weights (the regions' counts are not released).
/// - The noise is independent per region, so variances add: the combined
///   standard deviation is √Σσᵢ² (divided by n for an average). The interval
///   is the normal approximation at `intervalLevel`, ±z·σ around the value
///   (per category for a histogram).
/// - ε is the largest of the regions' (and δ too): parallel composition,
///   which holds because a subject lives in exactly one region, so the
///   releases cover disjoint sets of subjects.
struct GlobalAggregate: Sendable {
    enum Combination: String, Sendable {
        case sum
        case unweightedMean = "unweighted_mean"
    }

    static let intervalLevel = 0.95
    /// The standard normal quantile for a two-sided 95% interval.
    static let intervalZ = 1.959_963_984_540_054

    let name: String
    let kind: String
    let combinedAs: Combination
    let result: AggregateResult
    let noiseScale: Double
    let epsilon: Double
    let delta: Double
    /// The releases combined, one per region, by region.
    let releases: [Release]
    /// Regions of the policy with no release of the name.
    let missingRegions: [String]
    /// Regions whose latest release of the name is of another kind.
    let mismatchedRegions: [String]

    var intervalHalfWidth: Double { Self.intervalZ * noiseScale }

    /// Combines each region's latest release (`latest`, at most one per
    /// region), of the kind of `preferred`'s release if it has one, else of
    /// the first region's. nil when no region released the name.
    init?(latest: [Release], regions: [String], preferred: String) {
        let byRegion = Dictionary(latest.map { ($0.region, $0) }, uniquingKeysWith: { first, _ in first })
        guard let reference = byRegion[preferred] ?? latest.sorted(by: { $0.region < $1.region }).first else { return nil }
        let combined = latest.filter { $0.kind == reference.kind }.sorted { $0.region < $1.region }
        name = reference.name
        kind = reference.kind
        releases = combined
        missingRegions = regions.filter { byRegion[$0] == nil }.sorted()
        mismatchedRegions = latest.filter { $0.kind != reference.kind }.map(\.region).sorted()
        combinedAs = kind == "mean" ? .unweightedMean : .sum
        let divisor = combinedAs == .unweightedMean ? Double(combined.count) : 1
        let variance = combined.reduce(0) { $0 + $1.noiseScale * $1.noiseScale }
        noiseScale = variance.squareRoot() / divisor
        epsilon = combined.map(\.epsilon).max() ?? 0
        delta = combined.map(\.delta).max() ?? 0
        switch reference.result {
        case .value:
            let total = combined.reduce(0) { total, release in
                if case .value(let value) = release.result { return total + value }
                return total
            }
            result = .value(total / divisor)
        case .values:
            var totals: [String: Double] = [:]
            for release in combined {
                guard case .values(let values) = release.result else { continue }
                for (category, value) in values { totals[category, default: 0] += value }
            }
            result = .values(totals.sorted { $0.key < $1.key })
        }
    }
}
