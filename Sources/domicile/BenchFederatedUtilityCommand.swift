import DomicileModel
import DomicilePrivacy
import DomicileVectors
import Foundation

/// `domicile bench federated-utility`: what noising the exported embeddings
/// costs a federated search, as recall@10 against the exact top-10 over all
/// regions' full-precision vectors, per ε and clip norm.
struct BenchFederatedUtilityCommand: Command {
    static let path = ["bench", "federated-utility"]
    static let summary = "recall@10 of federated search over noised embeddings, per epsilon and clip norm"
    static let help = """
        [--count 30000] [--queries 200] [--dimension 384] [--clusters N] [--seed N] [--metric cosine|l2|dot]
        [--epsilons 1,2,4,8,16,inf] [--clip-ratios 0.5,1,2] [--dataset FILE.npy] [--csv FILE]

        Splits --count vectors evenly at random over three regions (eu, us, br). Each region exports
        every vector once, as EmbeddingNoise.noised does (clip to the L2 norm, grid, discrete Gaussian
        per component, sigma from (epsilon, delta = 1e-6) by the analytic Gaussian mechanism); inf is
        the clipping and the grid without noise, which EmbeddingNoise cannot express, so the bench
        does those two steps itself. Clip norms are the --clip-ratios times the median norm of the
        data (printed with the norm distribution). Each query is asked in one region in turn: that
        region's exact top-10 over its full-precision vectors, merged by score with the other two
        regions' top-10 over their noised copies, cut at 10. Every search is an exact scan, so the
        index's approximation does not blur the curve.

        Per (epsilon, clip norm): recall@10 against the exact top-10 over all full-precision vectors,
        with the merge by raw score (as the replicas answer) and with the remote scores calibrated
        (cosine: divided by min(clip, |noised|) rather than |noised|; l2: d sigma^2 taken off the
        squared distance; dot: unchanged); the recall of the remote part of the truth, in the merged
        result and among the remote regions' candidates; the bound on any merge of those candidates
        (every local answer of the truth plus the remote ones among the candidates); sigma per component.

        Data: seeded clustered synthetic vectors (--clusters, default count / 100), or with --dataset a
        2-D little-endian float32 .npy (rows are vectors; --dimension is then the file's), from which
        --queries rows are drawn at random as queries and up to --count of the rest are the data.
        --csv writes one row per (epsilon, clip norm). Build with -c release for 30k vectors.
        """

    static let k = 10
    static let delta = 1e-6
    static let regions = ["eu", "us", "br"]

    static func run(_ arguments: inout Arguments) async throws {
        let count = try arguments.integer("count", default: 30_000, range: 30...2_000_000)
        let queryCount = try arguments.integer("queries", default: 200, range: 1...100_000)
        let dimension = try arguments.integer("dimension", default: 384, range: 2...4_096)
        let clusters = try arguments.integer("clusters", default: max(count / 100, 1), range: 1...1_000_000)
        let seed = UInt64(try arguments.integer("seed", default: 20_261_130, range: 0...Int.max))
        let metricName = try arguments.option("metric") ?? "cosine"
        guard let metric = Metric(rawValue: metricName) else { throw CLIError.usage("--metric is one of cosine, l2, dot") }
        let epsilons = try numbers(arguments.option("epsilons") ?? "1,2,4,8,16,inf", flag: "epsilons", allowsInfinity: true)
        let clipRatios = try numbers(arguments.option("clip-ratios") ?? "0.5,1,2", flag: "clip-ratios", allowsInfinity: false)
        let dataset = try arguments.option("dataset")
        let csvPath = try arguments.option("csv")
        try arguments.finish()

        let data = try dataset.map { try UtilityData.numPy($0, count: count, queries: queryCount, seed: seed) }
            ?? UtilityData.synthetic(count: count, queries: queryCount, dimension: dimension, clusters: clusters, seed: seed)
        let experiment = try FederatedUtility(data: data, metric: metric, seed: seed)
        Output.line("domicile bench federated-utility: \(data.name), \(data.rows.count) × \(data.dimension) over \(regions.joined(separator: ", ")) "
                    + "(\(metric.rawValue), seed \(seed)), \(data.queries.count) queries, k \(k), delta \(delta), exact scans")
        let norms = experiment.norms
        Output.line(String(format: "  norms: min %.3f, p5 %.3f, median %.3f, p95 %.3f, max %.3f", norms.quantile(0), norms.quantile(0.05),
                           norms.quantile(0.5), norms.quantile(0.95), norms.quantile(1)))
        Output.line("  epsilon  clip_ratio  clip_norm  clipped  sigma     sigma/clip  recall  recall_calibrated  remote_recall  remote_candidates  bound")
        var rows: [FederatedUtility.Row] = []
        for epsilon in epsilons {
            for ratio in clipRatios {
                let row = try experiment.measure(epsilon: epsilon, clipRatio: ratio)
                rows.append(row)
                Output.line("  " + row.epsilonText.leftPadded(7) + String(format: "  %10.2f  %9.4f  %6.1f%%  %-8.4g  %10.4f  %6.3f  %17.3f  %13.3f  %17.3f  %5.3f",
                                   row.clipRatio, row.clipNorm, 100 * row.clippedFraction, row.sigma,
                                   row.sigma / row.clipNorm, row.recall, row.recallCalibrated, row.remoteRecall, row.remoteCandidateRecall, row.recallBound))
            }
        }
        if let csvPath {
            let csv = FederatedUtility.Row.csvHeader + rows.map { $0.csvLine(dataset: data.name, metric: metric) }.joined()
            do { try csv.write(toFile: csvPath, atomically: true, encoding: .utf8) } catch {
                throw CLIError.failed("cannot write \(csvPath): \(error.localizedDescription)")
            }
            Output.line("  wrote \(rows.count) rows to \(csvPath)")
        }
    }

    /// A comma-separated list of positive numbers (`inf` where allowed).
    static func numbers(_ text: String, flag: String, allowsInfinity: Bool) throws(CLIError) -> [Double] {
        var values: [Double] = []
        for item in text.split(separator: ",") {
            let value = item == "inf" ? Double.infinity : Double(item)
            guard let value, value > 0, value.isFinite || allowsInfinity else {
                throw .usage("--\(flag) is a comma-separated list of positive numbers" + (allowsInfinity ? " or inf" : ""))
            }
            values.append(value)
        }
        guard !values.isEmpty else { throw .usage("--\(flag) is empty") }
        return values
    }
}

/// Vectors and queries for the bench, each vector in one region.
struct UtilityData {
    let name: String
    let dimension: Int
    let rows: [[Float]]
    let queries: [[Float]]
    /// The region (an index into `BenchFederatedUtilityCommand.regions`) of each row: an even split at random.
    let regionOf: [Int]
    /// Keeps the split's draws apart from the generator's, which uses the seed as is.
    static let regionSplitSalt: UInt64 = 0x5EED_0F_2E610

    init(name: String, dimension: Int, rows: [[Float]], queries: [[Float]], seed: UInt64) {
        self.name = name
        self.dimension = dimension
        self.rows = rows
        self.queries = queries
        var random = SeededRandom(seed: seed ^ Self.regionSplitSalt)
        var order = Array(rows.indices)
        order.shuffle(using: &random)
        var regionOf = [Int](repeating: 0, count: rows.count)
        for (position, row) in order.enumerated() { regionOf[row] = position % BenchFederatedUtilityCommand.regions.count }
        self.regionOf = regionOf
    }

    static func synthetic(count: Int, queries: Int, dimension: Int, clusters: Int, seed: UInt64) -> UtilityData {
        let all = SyntheticVectors.clustered(count: count + queries, dimension: dimension, clusters: clusters, seed: seed)
        return UtilityData(name: "synthetic-clustered-\(clusters)", dimension: dimension,
                           rows: (0..<count).map { all[$0] }, queries: (count..<(count + queries)).map { all[$0] }, seed: seed)
    }

    /// Rows of a 2-D little-endian float32 .npy in C order (or .fvecs), read
    /// by `VectorFile`; rows that are zero or not finite are dropped (no
    /// metric compares them).
    static func numPy(_ path: String, count: Int, queries: Int, seed: UInt64) throws -> UtilityData {
        let matrix: SyntheticVectors
        do { matrix = try VectorFile.load(path) } catch { throw CLIError.failed("\(path): \(error)") }
        var usable = (0..<matrix.count).map { matrix[$0] }.filter { row in
            row.allSatisfy(\.isFinite) && row.contains { $0 != 0 }
        }
        var random = SeededRandom(seed: seed)
        usable.shuffle(using: &random)
        guard usable.count > queries + 3 else {
            throw CLIError.failed("\(path) has \(usable.count) usable rows, too few for \(queries) queries")
        }
        let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return UtilityData(name: name, dimension: matrix.dimension, rows: Array(usable[queries..<min(usable.count, queries + count)]),
                           queries: Array(usable[..<queries]), seed: seed)
    }
}

/// The experiment: the ground truth and each region's exact local answers
/// are computed once; each (ε, clip norm) exports every vector anew.
struct FederatedUtility {
    let data: UtilityData
    let metric: Metric
    let seed: UInt64
    /// L2 norms of the data vectors, sorted.
    let norms: SortedNorms
    /// Labels (row numbers) of the exact top-k over all regions, per query.
    private let truth: [[Int]]
    /// Each query's region's exact top-k over its own full-precision vectors.
    private let local: [[SearchHit]]

    struct SortedNorms {
        let sorted: [Double]
        func quantile(_ q: Double) -> Double { sorted[Int((Double(sorted.count - 1) * q).rounded())] }
    }

    init(data: UtilityData, metric: Metric, seed: UInt64) throws {
        self.data = data
        self.metric = metric
        self.seed = seed
        norms = SortedNorms(sorted: data.rows.map(Self.norm).sorted())
        let all = try Self.index(data.rows.indices, metric: metric, dimension: data.dimension) { data.rows[$0] }
        truth = try data.queries.map { query in try all.exactSearch(query, k: BenchFederatedUtilityCommand.k, now: 0).map { Int($0.label)! } }
        let regional = try BenchFederatedUtilityCommand.regions.indices.map { region in
            try Self.index(data.rows.indices.filter { data.regionOf[$0] == region }, metric: metric, dimension: data.dimension) { data.rows[$0] }
        }
        local = try data.queries.enumerated().map { number, query in
            try regional[Self.querier(of: number)].exactSearch(query, k: BenchFederatedUtilityCommand.k, now: 0)
        }
    }

    /// Queries are asked in each region in turn.
    static func querier(of query: Int) -> Int { query % BenchFederatedUtilityCommand.regions.count }

    static func norm(_ vector: [Float]) -> Double { vector.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

    /// A flat index of `rows`, labelled by row number.
    static func index(_ rows: some Sequence<Int>, metric: Metric, dimension: Int, vector: (Int) -> [Float]) throws -> VectorIndex {
        let index = VectorIndex(dimension: dimension, metric: metric, kind: .flat)
        for row in rows { try index.upsert(String(row), vector: vector(row), eligibleUntil: .max) }
        return index
    }

    struct Row {
        let epsilon: Double
        let clipRatio: Double
        let clipNorm: Double
        let clippedFraction: Double
        /// σ per component, in the vectors' units (0 at ε = ∞).
        let sigma: Double
        let recall: Double
        let recallCalibrated: Double
        let remoteRecall: Double
        let remoteCandidateRecall: Double
        /// The best any merge of these candidates could do: every local
        /// answer of the truth (the local top-k holds them all) and every
        /// remote one among the remote candidates.
        let recallBound: Double

        var epsilonText: String { epsilon.isFinite ? String(format: "%g", epsilon) : "inf" }

        static let csvHeader = "dataset,metric,epsilon,delta,clip_ratio,clip_norm,clipped_fraction,sigma,recall_at_10,"
            + "recall_at_10_calibrated,remote_recall,remote_candidate_recall,recall_bound\n"

        func csvLine(dataset: String, metric: Metric) -> String {
            [dataset, metric.rawValue, epsilonText, String(format: "%g", BenchFederatedUtilityCommand.delta),
             String(format: "%g", clipRatio), String(format: "%.6g", clipNorm), String(format: "%.4f", clippedFraction),
             String(format: "%.6g", sigma), String(format: "%.4f", recall), String(format: "%.4f", recallCalibrated),
             String(format: "%.4f", remoteRecall), String(format: "%.4f", remoteCandidateRecall),
             String(format: "%.4f", recallBound)].joined(separator: ",") + "\n"
        }
    }

    /// One point of the curve: every vector exported once at (ε, clip), the
    /// other regions' copies indexed, every query merged and scored.
    func measure(epsilon: Double, clipRatio: Double) throws -> Row {
        let clipNorm = clipRatio * norms.quantile(0.5)
        var random = SeededRandom(seed: seed ^ epsilon.bitPattern ^ clipRatio.bitPattern.byteSwapped)
        var sigma = 0.0
        let exported = try data.rows.map { row -> [Float] in
            guard epsilon.isFinite else { return Self.clippedOnGrid(row, clipNorm: clipNorm) }
            let noised = try EmbeddingNoise.noised(row, clipNorm: clipNorm, epsilon: epsilon, delta: BenchFederatedUtilityCommand.delta, using: &random)
            sigma = noised.sigma
            return noised.vector
        }
        let replicas = try BenchFederatedUtilityCommand.regions.indices.map { region in
            try Self.index(data.rows.indices.filter { data.regionOf[$0] == region }, metric: metric, dimension: data.dimension) { exported[$0] }
        }
        let scores = MergeScore(metric: metric, clipNorm: clipNorm, sigma: sigma, dimension: data.dimension)
        let k = BenchFederatedUtilityCommand.k
        var found = 0, foundCalibrated = 0, remoteTruth = 0, remoteFound = 0, remoteCandidates = 0
        for (number, query) in data.queries.enumerated() {
            let querier = Self.querier(of: number)
            let remote = try replicas.indices.filter { $0 != querier }.flatMap { try replicas[$0].exactSearch(query, k: k, now: 0) }
            let localHits = local[number].map { (label: Int($0.label)!, closeness: scores.closeness(exact: $0.score)) }
            let raw = top(localHits + remote.map { (Int($0.label)!, scores.closeness(exact: $0.score)) }, k)
            let calibrated = top(localHits + remote.map { (Int($0.label)!, scores.closeness(remote: $0.score, exported[Int($0.label)!])) }, k)
            let expected = Set(truth[number])
            let expectedRemote = expected.filter { data.regionOf[$0] != querier }
            found += raw.filter(expected.contains).count
            foundCalibrated += calibrated.filter(expected.contains).count
            remoteTruth += expectedRemote.count
            remoteFound += raw.filter(expectedRemote.contains).count
            remoteCandidates += remote.filter { expectedRemote.contains(Int($0.label)!) }.count
        }
        let asked = Double(data.queries.count * k)
        return Row(epsilon: epsilon, clipRatio: clipRatio, clipNorm: clipNorm,
                   clippedFraction: Double(norms.sorted.filter { $0 > clipNorm }.count) / Double(norms.sorted.count), sigma: sigma,
                   recall: Double(found) / asked, recallCalibrated: Double(foundCalibrated) / asked,
                   remoteRecall: remoteTruth == 0 ? 1 : Double(remoteFound) / Double(remoteTruth),
                   remoteCandidateRecall: remoteTruth == 0 ? 1 : Double(remoteCandidates) / Double(remoteTruth),
                   recallBound: Double(data.queries.count * k - remoteTruth + remoteCandidates) / asked)
    }

    /// The labels of the k closest, closest first.
    private func top(_ hits: [(label: Int, closeness: Double)], _ k: Int) -> [Int] {
        hits.sorted { $0.closeness > $1.closeness }.prefix(k).map(\.label)
    }

    /// EmbeddingNoise's clipping and grid without the noise (ε = ∞, which
    /// it cannot calibrate): the same steps, so the curve's right end
    /// differs from the noised points by the noise alone.
    static func clippedOnGrid(_ vector: [Float], clipNorm: Double) -> [Float] {
        let norm = Self.norm(vector)
        let factor = norm > clipNorm ? clipNorm / norm : 1
        let grid = Grid(bound: clipNorm)
        return vector.map { Float(grid.value(grid.steps(Double($0) * factor))) }
    }
}

/// Scores made comparable for the merge: higher is closer. Exact and raw
/// remote scores are the metric's own; a calibrated remote score removes
/// what the noise adds on average.
struct MergeScore {
    let metric: Metric
    let clipNorm: Double
    let sigma: Double
    let dimension: Int

    func closeness(exact score: Float) -> Double {
        switch metric {
        case .cosine, .dot: return Double(score)
        case .l2: return -Double(score) * Double(score)
        }
    }

    /// cosine: the index divides by |noised|, which the noise inflates
    /// (about √(d)·σ); the exported vector's own norm was at most the clip.
    /// l2: the squared distance gains d·σ² on average. dot: unbiased.
    func closeness(remote score: Float, _ exported: [Float]) -> Double {
        switch metric {
        case .cosine:
            let norm = FederatedUtility.norm(exported)
            return Double(score) * norm / min(clipNorm, norm)
        case .l2: return -(Double(score) * Double(score) - Double(dimension) * sigma * sigma)
        case .dot: return Double(score)
        }
    }
}
