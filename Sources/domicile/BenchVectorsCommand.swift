import CLinux
import DomicileNet
import DomicileVectors
import Foundation

/// `domicile bench vectors`: the HNSW index and the flat scan against
/// hnswlib and NumPy, on the same vectors in the same run.
struct BenchVectorsCommand: Command {
    static let path = ["bench", "vectors"]
    static let summary = "HNSW and flat scan against hnswlib and NumPy on the same vectors"
    static let help = """
        [--count 100000] [--dimension 384] [--clusters 1000] [--queries 1000] [--m 16] [--ef-construction 200]
        [--seed N] [--reference Tests/Bench/vectors_reference.py | none] [--skip-crossover]
        [--dataset FILE.npy|FILE.fvecs [--normalize]] [--build-threads 1] [--rounds 1]

        On one thread, with seeded clustered vectors of low intrinsic dimension (l2 metric):
          - the exact top-10 of every query by Domicile's flat scan (scan rate in GB/s), which is
            the ground truth for recall;
          - the reference script (Python: NumPy, hnswlib from PyPI) on the same vectors: NumPy's
            brute-force scan rate, hnswlib's build time, memory per vector and recall@10 / queries
            per second for a sweep of ef, with the same m and ef_construction;
          - Domicile's HNSW build time, memory per vector (heap and resident) and the same sweep;
          - the build on two threads (upsertAll, as a node's restart loads), against hnswlib's on two;
          - queries per second of each at the smallest ef reaching recall@10 0.90, 0.95 and 0.99,
            and their ratio;
          - the filtered-search crossover: graph walk against exact scan with 50% to 1% of the
            vectors eligible.
        With --dataset, real embeddings instead of the synthetic ones: a .npy file (float32, C order,
        rows × dimension) or an .fvecs file (per row: int32 dimension, then the floats), as the
        ANN benchmarks ship them. The last --queries rows are held out as the queries, the rest
        are the data (--count and --dimension are then not used); the ground truth is still the
        exact search. --normalize scales every row to unit length first, for embeddings compared
        by cosine (angular data sets): l2 on unit vectors ranks as cosine does.
        --build-threads N (N > 1) builds the measured graph on N threads (upsertAll) in place of
        one thread and the separate two-thread build: for sizes (1M) where two builds cost too much.
        --rounds N (N > 1) sweeps both graphs N times, the two sides in turn (hnswlib's saved index
        reloaded each time), and compares each side's best round per ef, so that a noisy neighbour on
        a shared machine skews neither side alone.
        Build with -c release. Without numpy/hnswlib, the reference side is reported missing.
        """

    static let k = 10
    static let efs = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
    static let targets = [0.90, 0.95, 0.99]

    struct Point {
        let ef: Int
        let recall: Double
        let qps: Double
    }

    static func run(_ arguments: inout Arguments) async throws {
        let syntheticCount = try arguments.integer("count", default: 100_000, range: 1_000...2_000_000)
        let syntheticDimension = try arguments.integer("dimension", default: 384, range: 8...4_096)
        let clusters = try arguments.integer("clusters", default: 1_000, range: 1...100_000)
        let queryCount = try arguments.integer("queries", default: 1_000, range: 10...100_000)
        let m = try arguments.integer("m", default: 16, range: HNSWSettings.mRange)
        let efConstruction = try arguments.integer("ef-construction", default: 200, range: m...4_096)
        let seed = UInt64(try arguments.integer("seed", default: 20_261_122, range: 0...Int.max))
        let reference = try arguments.option("reference") ?? "Tests/Bench/vectors_reference.py"
        let crossover = !arguments.flag("skip-crossover")
        let dataset = try arguments.option("dataset")
        let normalize = arguments.flag("normalize")
        let buildThreads = try arguments.integer("build-threads", default: 1, range: 1...64)
        let rounds = try arguments.integer("rounds", default: 1, range: 1...20)
        try arguments.finish()

        var start = Bench.monotonicSeconds()
        let (data, queries): (SyntheticVectors, SyntheticVectors)
        if let dataset {
            (data, queries) = try heldOut(dataset, queries: queryCount, normalize: normalize)
            Output.line("domicile bench vectors: \(dataset): \(data.count) × \(data.dimension) (l2\(normalize ? " on unit vectors" : "")), "
                        + "\(queryCount) held-out queries, k \(k), m \(m), ef_construction \(efConstruction), one thread")
            Output.line(String(format: "  data read in %.1f s", Bench.monotonicSeconds() - start))
        } else {
            Output.line("domicile bench vectors: \(syntheticCount) × \(syntheticDimension) (l2, \(clusters) clusters, seed \(seed)), \(queryCount) queries, "
                        + "k \(k), m \(m), ef_construction \(efConstruction), one thread")
            (data, queries) = SyntheticVectors.clustered(count: syntheticCount + queryCount, dimension: syntheticDimension, clusters: clusters,
                                                         seed: seed).split(at: syntheticCount)
            Output.line(String(format: "  data generated in %.1f s", Bench.monotonicSeconds() - start))
        }
        let count = data.count, dimension = data.dimension

        // Exact: the flat scan, which is also the ground truth (its index is freed before the graph is measured).
        let (truth, scanGBps) = try exactTopK(data: data, queries: queries)

        // The reference, on the same files.
        let referenceRun = ReferenceRun(script: reference, dimension: dimension, m: m, efConstruction: efConstruction)
        defer { referenceRun?.remove() }
        let referenceReport = referenceRun?.report(data: data, queries: queries, truth: truth)

        // Domicile's HNSW.
        let heapBefore = heapBytes(), residentBefore = residentBytes()
        let graph = emptyGraph(dimension: dimension, m: m, efConstruction: efConstruction)
        start = Bench.monotonicSeconds()
        if buildThreads > 1 {
            try graph.upsertAll((0..<count).map { VectorItem(label: String($0), vector: data[$0], eligibleUntil: .max) }, threads: buildThreads)
        } else {
            for row in 0..<count { try graph.upsert(String(row), vector: data[row], eligibleUntil: .max) }
        }
        let buildSeconds = Bench.monotonicSeconds() - start
        // `data` stays alive until the heap is read: freeing it early would hide the index's growth.
        let grown = Double(withExtendedLifetime(data) { heapBytes() } - heapBefore) / Double(count)
        let resident = Double(residentBytes() - residentBefore) / Double(count)
        Output.line(String(format: "  domicile hnsw: built on %d thread%@ in %.1f s (%.0f inserts/s), %.0f bytes/vector allocated "
                           + "(%.0f by the index's own count), %.0f bytes/vector resident", buildThreads, buildThreads > 1 ? "s" : "",
                           buildSeconds, Double(count) / buildSeconds, grown, graph.bytesPerVector, resident))
        let parallelSeconds = buildThreads > 1
            ? buildSeconds : try measureParallelBuild(data: data, queries: queries, truth: truth, m: m, efConstruction: efConstruction)
        var ours: [Point] = []
        for ef in efs {
            let (recall, qps) = try sweepPoint(graph, queries: queries, truth: truth, ef: ef, now: 0)
            ours.append(Point(ef: ef, recall: recall, qps: qps))
            Output.line(String(format: "    ef %4d  recall@10 %.4f  %8.0f queries/s", ef, recall, qps))
        }

        if let referenceReport {
            let scan = referenceReport["numpy_scan_gbps_one_thread"] as? Double ?? 0
            Output.line(String(format: "  numpy brute force (one thread): %.2f GB/s; flat scan / numpy = %.2f; numpy agrees with our truth: %.4f",
                               scan, scanGBps / scan, referenceReport["numpy_truth_agreement"] as? Double ?? 0))
            if let hnsw = referenceReport["hnswlib"] as? [String: Any] {
                let theirBuild = hnsw["build_seconds"] as? Double ?? 0
                let theirBytes = hnsw["bytes_per_vector"] as? Double ?? 0
                Output.line(String(format: "  hnswlib: built in %.1f s; build time ratio (hnswlib / domicile) %.2f; bytes/vector %.0f (domicile / hnswlib %.2f)",
                                   theirBuild, theirBuild / buildSeconds, theirBytes, grown / theirBytes))
                let theirResident = hnsw["resident_bytes_per_vector"] as? Double ?? 0
                let theirParallel = hnsw["build_seconds_two_threads"] as? Double ?? 0
                Output.line(String(format: "  hnswlib: %.0f bytes/vector resident (domicile / hnswlib %.2f); built on 2 threads in %.1f s "
                                   + "(hnswlib / domicile %.2f)", theirResident, resident / theirResident, theirParallel,
                                   theirParallel / parallelSeconds))
                var theirs = points(hnsw["sweep"])
                for point in theirs {
                    Output.line(String(format: "    hnswlib ef %4d  recall@10 %.4f  %8.0f queries/s", point.ef, point.recall, point.qps))
                }
                if rounds > 1, let referenceRun {
                    (ours, theirs) = try alternate(rounds: rounds, graph, ours, referenceRun, theirs, queries: queries, truth: truth)
                }
                Output.line("  at equal recall (smallest ef reaching it\(rounds > 1 ? ", best round of each" : "")):")
                for target in targets {
                    let mine = ours.first { $0.recall >= target }, other = theirs.first { $0.recall >= target }
                    Output.line("    recall ≥ \(target): domicile " + describe(mine) + ", hnswlib " + describe(other)
                                + (mine != nil && other != nil ? String(format: ", ratio %.2f", mine!.qps / other!.qps) : ""))
                }
            } else {
                Output.line("  hnswlib: not installed (pip install hnswlib)")
            }
        }
        if crossover { try measureCrossover(graph, queries: queries, count: count) }
    }

    /// Rounds 2 to `rounds` of both sweeps, hnswlib's then Domicile's, each
    /// round's ratio per ef printed; returns each side's best queries/s per
    /// ef over all rounds (the recalls are the same in every round).
    static func alternate(rounds: Int, _ graph: VectorIndex, _ ours: [Point], _ reference: ReferenceRun, _ theirs: [Point],
                          queries: SyntheticVectors, truth: [[Int32]]) throws -> ([Point], [Point]) {
        func best(_ old: [Point], _ new: [Point]) -> [Point] {
            zip(old, new).map { Point(ef: $0.ef, recall: $0.recall, qps: max($0.qps, $1.qps)) }
        }
        var ours = ours, theirs = theirs
        func line(_ round: Int, _ mine: [Point], _ other: [Point]) {
            Output.line("    round \(round) domicile / hnswlib per ef: "
                        + zip(mine, other).map { String(format: "%d %.2f", $0.ef, $0.qps / $1.qps) }.joined(separator: ", "))
        }
        line(1, ours, theirs)
        for round in 2...rounds {
            guard let other = reference.sweep(), other.count == theirs.count else {
                Output.error("reference: round \(round) of the sweep failed")
                break
            }
            let mine = try efs.map { ef in
                let (recall, qps) = try sweepPoint(graph, queries: queries, truth: truth, ef: ef, now: 0)
                return Point(ef: ef, recall: recall, qps: qps)
            }
            line(round, mine, other)
            ours = best(ours, mine)
            theirs = best(theirs, other)
        }
        Output.line("  best of \(rounds) rounds, queries/s per ef (domicile / hnswlib): "
                    + zip(ours, theirs).map { String(format: "%d %.0f / %.0f", $0.ef, $0.qps, $1.qps) }.joined(separator: ", "))
        return (ours, theirs)
    }

    /// A sweep as the reference script reports it.
    static func points(_ sweep: Any?) -> [Point] {
        (sweep as? [[String: Any]] ?? []).map {
            Point(ef: $0["ef"] as? Int ?? 0, recall: $0["recall"] as? Double ?? 0, qps: $0["qps"] as? Double ?? 0)
        }
    }

    static func emptyGraph(dimension: Int, m: Int, efConstruction: Int) -> VectorIndex {
        VectorIndex(dimension: dimension, metric: .l2, kind: .hnsw(HNSWSettings(m: m, efConstruction: efConstruction, ef: 64)),
                    planner: .walkAlways)
    }

    /// The same graph built by `upsertAll` on two threads (as a node's
    /// restart builds it): its time, and its recall at two ef values against
    /// the one-thread graph's. Returns the seconds.
    static func measureParallelBuild(data: SyntheticVectors, queries: SyntheticVectors, truth: [[Int32]], m: Int,
                                     efConstruction: Int) throws -> Double {
        let graph = emptyGraph(dimension: data.dimension, m: m, efConstruction: efConstruction)
        let items = (0..<data.count).map { VectorItem(label: String($0), vector: data[$0], eligibleUntil: .max) }
        let start = Bench.monotonicSeconds()
        try graph.upsertAll(items, threads: 2)
        let seconds = Bench.monotonicSeconds() - start
        var recalls: [String] = []
        for ef in [16, 32] {
            var hits = 0
            for row in 0..<queries.count {
                let expected = Set(truth[row])
                hits += try graph.graphSearch(queries[row], k: k, ef: ef, now: 0).filter { expected.contains(Int32($0.label)!) }.count
            }
            recalls.append(String(format: "ef %d recall@10 %.4f", ef, Double(hits) / Double(queries.count * k)))
        }
        Output.line(String(format: "  domicile hnsw, 2 threads (upsertAll): built in %.1f s (%.0f inserts/s); ", seconds, Double(data.count) / seconds)
                    + recalls.joined(separator: ", "))
        return seconds
    }

    /// A data set's rows: all but the last `queries` as the data, those as
    /// the queries; scaled to unit length when `normalize`.
    static func heldOut(_ path: String, queries: Int, normalize: Bool) throws -> (data: SyntheticVectors, queries: SyntheticVectors) {
        let rowsMax = 2_000_000 + queries
        var vectors: SyntheticVectors
        do { vectors = try VectorFile.load(path, rowsMax: rowsMax) } catch { throw CLIError.failed("--dataset: \(error.description)") }
        guard vectors.count >= queries + 1_000 else {
            throw CLIError.usage("--dataset: \(vectors.count) rows; at least \(queries + 1_000) needed for \(queries) queries and 1000 data rows")
        }
        if normalize { vectors = vectors.normalized() }
        return vectors.split(at: vectors.count - queries)
    }

    /// The exact top-k of every query, by a flat index's scan, and the scan rate in GB/s.
    static func exactTopK(data: SyntheticVectors, queries: SyntheticVectors) throws -> ([[Int32]], Double) {
        let flat = VectorIndex(dimension: data.dimension, metric: .l2, kind: .flat)
        for row in 0..<data.count { try flat.upsert(String(row), vector: data[row], eligibleUntil: .max) }
        let start = Bench.monotonicSeconds()
        let truth = try (0..<queries.count).map { row in try flat.exactSearch(queries[row], k: k, now: 0).map { Int32($0.label)! } }
        let seconds = Bench.monotonicSeconds() - start
        let gbps = Double(data.count * data.dimension * 4 * queries.count) / seconds / 1e9
        Output.line(String(format: "  flat scan: %.0f queries/s, %.2f GB/s", Double(queries.count) / seconds, gbps))
        return (truth, gbps)
    }

    static func describe(_ point: Point?) -> String {
        guard let point else { return "not reached" }
        return String(format: "%.0f q/s (ef %d, recall %.3f)", point.qps, point.ef, point.recall)
    }

    static func sweepPoint(_ index: VectorIndex, queries: SyntheticVectors, truth: [[Int32]], ef: Int, now: Int64) throws -> (Double, Double) {
        let prepared = (0..<queries.count).map { queries[$0] }
        var found: [[SearchHit]] = []
        var qps = 0.0
        // Best of three rounds: a noisy neighbour on a shared machine slows a round, never speeds one up.
        for _ in 0..<3 {
            found.removeAll(keepingCapacity: true)
            let start = Bench.monotonicSeconds()
            for query in prepared { found.append(try index.graphSearch(query, k: k, ef: ef, now: now)) }
            qps = max(qps, Double(prepared.count) / (Bench.monotonicSeconds() - start))
        }
        var hits = 0
        for (result, expected) in zip(found, truth) {
            let expected = Set(expected)
            hits += result.filter { expected.contains(Int32($0.label)!) }.count
        }
        return (Double(hits) / Double(truth.count * k), qps)
    }

    /// Graph walk against exact scan as fewer vectors are eligible, and the
    /// planner's choice (`bench planner` measures more sizes and dimensions).
    static func measureCrossover(_ index: VectorIndex, queries: SyntheticVectors, count: Int) throws {
        Output.line("  filtered search, ef 64 (graph walk) against exact scan of the eligible vectors:")
        let sample = queries.split(at: min(queries.count, 200)).data
        for row in try BenchPlannerCommand.measure(index, queries: sample, count: count, ef: 64, seed: 20_261_130,
                                                   percents: [50, 20, 10, 5, 2, 1]) {
            Output.line(String(format: "    %2d%% eligible: graph %7.0f q/s (recall %.3f), exact %7.0f q/s; graph / exact %.2f; planner: %@",
                               row.percent, row.walkQPS, row.walkRecall, row.scanQPS, row.walkQPS / row.scanQPS,
                               row.plan == .graph ? "walk" : "scan"))
        }
    }

    /// The reference script (`Tests/Bench/vectors_reference.py`) and the
    /// files it reads: the vectors and the truth, written once, and
    /// hnswlib's index, saved by the first run for the later sweeps.
    struct ReferenceRun {
        let python: String
        let script: String
        let directory: String
        let common: [String]

        /// Nil with `none`, or without the script or python3 (said why).
        init?(script: String, dimension: Int, m: Int, efConstruction: Int) {
            guard script != "none" else { return nil }
            guard FileManager.default.fileExists(atPath: script), let python = ChildProcess.find("python3") else {
                Output.line("  reference: \(script) or python3 not found; skipped")
                return nil
            }
            self.python = python
            self.script = script
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-vectors-\(getpid())").path
            common = ["--data", "\(directory)/data.f32", "--queries", "\(directory)/queries.f32", "--truth", "\(directory)/truth.i32",
                      "--dimension", String(dimension), "--k", String(k), "--m", String(m), "--ef-construction", String(efConstruction),
                      "--efs", efs.map(String.init).joined(separator: ",")]
        }

        var indexPath: String { "\(directory)/hnswlib.bin" }

        func remove() { try? FileManager.default.removeItem(atPath: directory) }

        /// Writes the vectors and the truth for the script, runs it (saving its index), and returns its JSON.
        func report(data: SyntheticVectors, queries: SyntheticVectors, truth: [[Int32]]) -> [String: Any]? {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try data.values.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(directory)/data.f32")) }
                try queries.values.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(directory)/queries.f32")) }
                try truth.flatMap { $0 }.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(directory)/truth.i32")) }
            } catch {
                Output.error("reference: cannot write the vectors: \(error)")
                return nil
            }
            Output.line("  running the reference (\(script))…")
            return run(common + ["--save-index", indexPath])
        }

        /// hnswlib's sweep again, on the index the first run saved.
        func sweep() -> [Point]? {
            run(common + ["--sweep-index", indexPath]).map { points($0["sweep"]) }
        }

        private func run(_ arguments: [String]) -> [String: Any]? {
            guard let output = Bench.capture(python, [script] + arguments),
                  let report = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
                Output.error("reference: the script failed or printed no report")
                return nil
            }
            return report
        }
    }

    /// The process's resident set (`/proc/self/statm`), in bytes; the
    /// reference script reads hnswlib's the same way.
    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Bytes the allocator has handed out (glibc's mallinfo2: small blocks
    /// and mmapped ones); the reference script measures hnswlib the same way.
    static func heapBytes() -> Int {
        let info = mallinfo2()
        return info.uordblks + info.hblkhd
    }
}
