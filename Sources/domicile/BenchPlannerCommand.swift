import DomicileModel
import DomicileVectors
import Foundation

/// `domicile bench planner`: the filtered graph walk against the exact scan
/// of the eligible vectors, and the planner's choice between them, as fewer
/// vectors are eligible; on several sizes and dimensions in one run, with the
/// cost constants (`SearchCosts`) fitted from what was measured.
struct BenchPlannerCommand: Command {
    static let path = ["bench", "planner"]
    static let summary = "The filter planner: walk against scan as fewer vectors are eligible, and the cost constants"
    static let help = """
        [--counts 20000,100000] [--dimensions 50,384] [--clusters count/100] [--queries 200] [--m 16]
        [--ef-construction 200] [--ef 64] [--seed N]

        For each size × dimension, on one thread, a seeded clustered set (l2) indexed with HNSW at the
        given settings (the planner at its defaults); then for 100%, 50%, 20%, 10%, 5%, 2% and 1% of the
        vectors eligible (drawn at random, seeded; eligible until a time, so the planner samples):
          - the exact scan of the eligible vectors (queries/s),
          - the filtered graph walk at the default ef (queries/s and recall@10 against the scan),
          - the planner's choice through the ordinary search, its queries/s and recall@10, and its
            queries/s over the better of walk and scan;
        scan, walk and planner each answer all the queries in turn, in passes (the order rotating), and
        each query's time is its best of at least three passes, so contention on a shared machine slows none.
        Then the constants of the cost model fitted over every size and dimension: the scan's cost per
        slot and per scored vector (a + b·dimension), the walk's cost per candidate of ef unfiltered
        (a + b·dimension) and its growth exponent as fewer vectors are eligible. Build with -c release.
        """

    static let k = 10
    static let percents = [100, 50, 20, 10, 5, 2, 1]

    /// What one fraction measured.
    struct Row {
        let percent: Int
        let eligible: Int
        let scanQPS: Double
        let walkQPS: Double
        let walkRecall: Double
        let plan: SearchPlan
        let plannedQPS: Double
        let plannedRecall: Double
    }

    static func run(_ arguments: inout Arguments) async throws {
        let counts = try integers(arguments.option("counts") ?? "20000,100000", name: "counts", range: 3_000...2_000_000)
        let dimensions = try integers(arguments.option("dimensions") ?? "50,384", name: "dimensions", range: 8...4_096)
        let clusterOption = try arguments.option("clusters").map { try integers($0, name: "clusters", range: 1...100_000)[0] }
        let queryCount = try arguments.integer("queries", default: 200, range: 10...10_000)
        let m = try arguments.integer("m", default: 16, range: HNSWSettings.mRange)
        let efConstruction = try arguments.integer("ef-construction", default: 200, range: m...4_096)
        let ef = try arguments.integer("ef", default: HNSWSettings().ef, range: HNSWSettings.efRange)
        let seed = UInt64(try arguments.integer("seed", default: 20_261_130, range: 0...Int.max))
        try arguments.finish()

        Output.line("domicile bench planner: k \(k), m \(m), ef_construction \(efConstruction), ef \(ef), \(queryCount) queries, one thread, "
                    + "seed \(seed); planner defaults: \(SearchPlanner().costs)")
        var measured: [Measured] = []
        for dimension in dimensions {
            for count in counts {
                let clusters = clusterOption ?? max(count / 100, 1)
                let (rows, slotNanos) = try measure(count: count, dimension: dimension, clusters: clusters, queryCount: queryCount, m: m,
                                                    efConstruction: efConstruction, ef: ef, seed: seed)
                measured.append((count, dimension, slotNanos, rows))
            }
        }
        fit(measured, ef: ef)
    }

    static func integers(_ text: String, name: String, range: ClosedRange<Int>) throws -> [Int] {
        let values = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count == text.split(separator: ",").count, values.allSatisfy(range.contains) else {
            throw CLIError.usage("--\(name): comma-separated integers in \(range.lowerBound)...\(range.upperBound)")
        }
        return values
    }

    typealias Measured = (count: Int, dimension: Int, slotNanos: Double, rows: [Row])

    /// Builds one index and measures it: the rows, and the scan's cost per slot
    /// (a scan with nothing eligible, which only reads the deadlines).
    static func measure(count: Int, dimension: Int, clusters: Int, queryCount: Int, m: Int, efConstruction: Int, ef: Int,
                        seed: UInt64) throws -> (rows: [Row], slotNanos: Double) {
        let (data, queries) = SyntheticVectors.clustered(count: count + queryCount, dimension: dimension, clusters: clusters, seed: seed)
            .split(at: count)
        let index = VectorIndex(dimension: dimension, metric: .l2,
                                kind: .hnsw(HNSWSettings(m: m, efConstruction: efConstruction, ef: ef)))
        let start = Bench.monotonicSeconds()
        for row in 0..<count { try index.upsert(String(row), vector: data[row], eligibleUntil: .max) }
        Output.line(String(format: "  %d × %d (%d clusters): built in %.1f s", count, dimension, clusters, Bench.monotonicSeconds() - start))
        let rows = try measure(index, queries: queries, count: count, ef: ef, seed: seed)
        for row in rows {
            let best = max(row.walkQPS, row.scanQPS)
            Output.line(String(format: "    %3d%% eligible: walk %7.0f q/s (recall %.3f), scan %7.0f q/s; planner: %@ %7.0f q/s "
                               + "(recall %.3f), %.2f× the better",
                               row.percent, row.walkQPS, row.walkRecall, row.scanQPS, row.plan == .graph ? "walk" : "scan",
                               row.plannedQPS, row.plannedRecall, row.plannedQPS / best))
        }
        for row in 0..<count { index.setEligibleUntil(String(row), 0) }
        let prepared = (0..<queries.count).map { queries[$0] }
        var best = [Double](repeating: .infinity, count: prepared.count)
        for _ in 0..<3 {
            for (query, vector) in prepared.enumerated() {
                let began = Bench.monotonicSeconds()
                _ = try index.exactSearch(vector, k: k, now: 1)
                best[query] = min(best[query], Bench.monotonicSeconds() - began)
            }
        }
        let emptyQPS = Double(prepared.count) / best.reduce(0, +)
        let slotNanos = 1e9 / emptyQPS / Double(count)
        Output.line(String(format: "    nothing eligible: scan %.0f q/s (%.2f ns per slot)", emptyQPS, slotNanos))
        for row in 0..<count { index.setEligibleUntil(String(row), .max) }
        return (rows, slotNanos)
    }

    /// Walk, scan and the planner's choice at each fraction eligible, on a
    /// built index whose labels are "0" ..< count. Leaves every vector eligible.
    static func measure(_ index: VectorIndex, queries: SyntheticVectors, count: Int, ef: Int, seed: UInt64,
                        percents: [Int] = percents) throws -> [Row] {
        var random = SeededRandom(seed: seed)
        let prepared = (0..<queries.count).map { queries[$0] }
        let now: Int64 = 1
        // Eligible until a time rather than forever, so the planner estimates the count from a sample
        // (forever-eligible vectors are counted exactly; docs/DECISIONS.md, "The cost-based planner").
        let untilTomorrow: Int64 = 86_400_000
        var rows: [Row] = []
        for percent in percents {
            var eligible = 0
            for row in 0..<count {
                let isEligible = random.next() % 100 < UInt64(percent)
                eligible += isEligible ? 1 : 0
                index.setEligibleUntil(String(row), isEligible ? untilTomorrow : 0)
            }
            let truth = try prepared.map { Set(try index.exactSearch($0, k: k, now: now).map(\.label)) }
            var walkHits = 0, plannedHits = 0
            var plan = SearchPlan.exact
            for (query, expected) in zip(prepared, truth) {
                walkHits += try index.graphSearch(query, k: k, ef: ef, now: now).filter { expected.contains($0.label) }.count
                let result = try index.search(query, k: k, now: now)
                plan = result.plan
                plannedHits += result.hits.filter { expected.contains($0.label) }.count
            }
            // Each of scan, walk and planner answers every query in turn, in passes (the order rotating), and
            // a query's time is its best over at least three passes (as many as fit in a second): on a shared
            // machine a noisy neighbour's time slice then lands on no method's figure, and each method runs
            // in the cache state its own queries leave, as a steady load of it would.
            let searches: [([Float]) throws -> Void] = [
                { _ = try index.exactSearch($0, k: k, now: now) },
                { _ = try index.graphSearch($0, k: k, ef: ef, now: now) },
                { _ = try index.search($0, k: k, now: now) },
            ]
            var best = [[Double]](repeating: [Double](repeating: .infinity, count: prepared.count), count: 3), passes = 0
            let start = Bench.monotonicSeconds()
            repeat {
                for position in 0..<3 {
                    let method = (passes + position) % 3
                    for query in 0..<prepared.count {
                        let began = Bench.monotonicSeconds()
                        try searches[method](prepared[query])
                        best[method][query] = min(best[method][query], Bench.monotonicSeconds() - began)
                    }
                }
                passes += 1
            } while passes < 3 || Bench.monotonicSeconds() - start < 1
            let (scanQPS, walkQPS, plannedQPS) = (Double(prepared.count) / best[0].reduce(0, +), Double(prepared.count) / best[1].reduce(0, +),
                                                  Double(prepared.count) / best[2].reduce(0, +))
            let expectedHits = max(truth.reduce(0) { $0 + $1.count }, 1)
            rows.append(Row(percent: percent, eligible: eligible, scanQPS: scanQPS, walkQPS: walkQPS,
                            walkRecall: Double(walkHits) / Double(expectedHits), plan: plan, plannedQPS: plannedQPS,
                            plannedRecall: Double(plannedHits) / Double(expectedHits)))
        }
        for row in 0..<count { index.setEligibleUntil(String(row), .max) }
        return rows
    }

    /// Least-squares line through points: (intercept, slope).
    static func line(_ points: [(x: Double, y: Double)]) -> (Double, Double) {
        let n = Double(points.count)
        let meanX = points.reduce(0) { $0 + $1.x } / n, meanY = points.reduce(0) { $0 + $1.y } / n
        let sxx = points.reduce(0) { $0 + ($1.x - meanX) * ($1.x - meanX) }
        let sxy = points.reduce(0) { $0 + ($1.x - meanX) * ($1.y - meanY) }
        let slope = sxx > 0 ? sxy / sxx : 0
        return (meanY - slope * meanX, slope)
    }

    /// Fits `SearchCosts` to the measurements and prints it.
    static func fit(_ measured: [Measured], ef: Int) {
        Output.line("  fitted cost model (ns per query):")
        var vectorCosts: [(x: Double, y: Double)] = [], efCosts: [(x: Double, y: Double)] = [], exponents: [Double] = []
        for (count, dimension, slotNanos, rows) in measured {
            // Scan: time = slots · scanSlot + eligible · perVector, perVector fitted through the origin over
            // 1–20% eligible, where the crossovers lie (scored vectors are sparse there: a cache miss each).
            let sparse = rows.filter { $0.percent <= 20 }
            let perVector = sparse.reduce(0) { $0 + Double($1.eligible) * (1e9 / $1.scanQPS - slotNanos * Double(count)) }
                / sparse.reduce(0) { $0 + Double($1.eligible) * Double($1.eligible) }
            // Walk: log time = log(ef · unit) + exponent · log(1 / p), over the filtered fractions.
            let filtered = rows.filter { $0.percent < 100 }
            let (logBase, exponent) = line(filtered.map { (log(Double(count) / Double(max($0.eligible, 1))), log(1e9 / $0.walkQPS)) })
            let unit = exp(logBase) / Double(ef)
            Output.line(String(format: "    %d × %d: scan %.2f ns/slot + %.1f ns/scored vector; walk %.0f ns per ef × (1/p)^%.2f",
                               count, dimension, slotNanos, perVector, unit, exponent))
            vectorCosts.append((Double(dimension), perVector))
            efCosts.append((Double(dimension), unit))
            exponents.append(exponent)
        }
        let (vectorFixed, vectorPerDimension) = line(vectorCosts)
        let (efFixed, efPerDimension) = line(efCosts)
        Output.line(String(format: "    SearchCosts(scanSlot: %.2f, scanVector: %.1f, scanVectorPerDimension: %.3f, walkPerEF: %.0f, "
                           + "walkPerEFPerDimension: %.2f, walkFilterExponent: %.2f)",
                           measured.reduce(0) { $0 + $1.slotNanos } / Double(measured.count), vectorFixed, vectorPerDimension,
                           efFixed, efPerDimension, exponents.reduce(0, +) / Double(exponents.count)))
    }
}
