import DomicileModel
import DomicileVectors
import Foundation

/// `domicile bench kernels`: the distance kernels at every instruction-set
/// level this CPU supports, against the Swift `SIMD8` kernel they replaced,
/// then a graph search with each level on the same graph.
struct BenchKernelsCommand: Command {
    static let path = ["bench", "kernels"]
    static let summary = "distance kernels per instruction-set level, and graph search with each"
    static let help = """
        [--milliseconds 300] [--count 100000] [--dimension 384] [--clusters 1000] [--queries 1000] [--m 16]
        [--ef-construction 200] [--seed N] [--skip-graph]

        On one thread:
          - nanoseconds per distance (squared L2 and dot) for dimensions 50, 128, 384 and 1536, with
            the vectors in cache: the Swift SIMD8 kernel used before issue 18 (compiled into this
            binary for baseline x86-64, as the portable build always was), each level's C kernel
            called directly, and the dispatched call every index makes (the level chosen at startup); best of three rounds;
          - an HNSW graph on the seeded clustered set of `bench vectors` (l2), built once, then
            searched with each level in turn (ef 16, 32, 64; best of three rounds): queries per
            second and recall@10 against the exact top-10.
        Build with -c release.
        """

    static let dimensions = [50, 128, 384, 1_536]
    static let efs = [16, 32, 64]

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = Double(try arguments.integer("milliseconds", default: 300, range: 10...10_000)) / 1_000
        let count = try arguments.integer("count", default: 100_000, range: 1_000...2_000_000)
        let dimension = try arguments.integer("dimension", default: 384, range: 8...4_096)
        let clusters = try arguments.integer("clusters", default: 1_000, range: 1...100_000)
        let queryCount = try arguments.integer("queries", default: 1_000, range: 10...100_000)
        let m = try arguments.integer("m", default: 16, range: HNSWSettings.mRange)
        let efConstruction = try arguments.integer("ef-construction", default: 200, range: m...4_096)
        let seed = UInt64(try arguments.integer("seed", default: 20_261_122, range: 0...Int.max))
        let graph = !arguments.flag("skip-graph")
        try arguments.finish()

        let best = VectorKernels.Level.best
        defer { VectorKernels.use(best) }
        Output.line("domicile bench kernels: levels supported \(VectorKernels.Level.supported.map(\.description).joined(separator: ", ")); "
                    + "chosen at startup: \(best)")
        measureKernels(seconds: seconds)
        guard graph else { return }
        try measureGraph(count: count, dimension: dimension, clusters: clusters, queryCount: queryCount, m: m,
                         efConstruction: efConstruction, seed: seed)
    }

    // MARK: - Kernels

    typealias Kernel = (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float

    static func measureKernels(seconds: Double) {
        var candidates: [(name: String, l2: Kernel, dot: Kernel)] = [
            ("swift simd8 (before)", SwiftSIMD8Kernel.squaredDistance, SwiftSIMD8Kernel.dot),
        ]
        for level in VectorKernels.Level.supported {
            guard let kernels = VectorKernels.kernels(at: level) else { continue }
            candidates.append(("c \(level)", { kernels.squaredDistance($0, $1, $2) }, { kernels.dot($0, $1, $2) }))
        }
        candidates.append(("dispatched (\(VectorKernels.Level.best))", { VectorKernels.squaredDistance($0, $1, count: $2) },
                           { VectorKernels.dot($0, $1, count: $2) }))

        Output.line("  ns per distance, vectors in cache (squared L2 / dot):")
        Output.line("    " + "kernel".padding(toLength: 26, withPad: " ", startingAt: 0)
                    + dimensions.map { "d \($0)".padding(toLength: 24, withPad: " ", startingAt: 0) }.joined())
        var random = SeededRandom(seed: 18)
        // 64 stored vectors and one query: 400 KB at d 1536, within L2.
        let stored = 64
        let data = dimensions.map { d in (0..<(stored + 1) * d).map { _ in Float(Int(random.next() >> 40)) / Float(1 << 23) - 1 } }
        var sink: Float = 0
        var swiftNanoseconds: [Double] = []
        for candidate in candidates {
            var cells: [String] = []
            for (column, d) in dimensions.enumerated() {
                let l2 = nanoseconds(data[column], dimension: d, stored: stored, seconds: seconds, sink: &sink, candidate.l2)
                let dot = nanoseconds(data[column], dimension: d, stored: stored, seconds: seconds, sink: &sink, candidate.dot)
                if candidates.first?.name == candidate.name { swiftNanoseconds.append(l2) }
                let ratio = swiftNanoseconds[column] / l2
                cells.append(String(format: "%.1f / %.1f (%.2f×)", l2, dot, ratio).padding(toLength: 24, withPad: " ", startingAt: 0))
            }
            Output.line("    " + candidate.name.padding(toLength: 26, withPad: " ", startingAt: 0) + cells.joined())
        }
        Output.line("    (×: squared L2 speed relative to the Swift SIMD8 kernel; checksum \(sink.isFinite ? "ok" : "not finite"))")
    }

    static func nanoseconds(_ values: [Float], dimension: Int, stored: Int, seconds: Double, sink: inout Float, _ kernel: Kernel) -> Double {
        values.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress!
            let query = base + stored * dimension
            var total: Float = 0
            // Best of three rounds: a noisy neighbour slows a round, never speeds one up.
            let rate = (0..<3).map { _ in
                Bench.rate(seconds: seconds / 3, batch: 1) {
                    for row in 0..<stored { total += kernel(query, base + row * dimension, dimension) }
                }
            }.max()!
            sink += total
            return 1e9 / (rate * Double(stored))
        }
    }

    // MARK: - Graph search with each level

    static func measureGraph(count: Int, dimension: Int, clusters: Int, queryCount: Int, m: Int, efConstruction: Int, seed: UInt64) throws {
        Output.line("  graph search: \(count) × \(dimension) (l2, \(clusters) clusters, seed \(seed)), \(queryCount) queries, k 10, "
                    + "m \(m), ef_construction \(efConstruction), one thread")
        let (data, queries) = SyntheticVectors.clustered(count: count + queryCount, dimension: dimension, clusters: clusters, seed: seed)
            .split(at: count)
        let (truth, _) = try BenchVectorsCommand.exactTopK(data: data, queries: queries)
        let index = VectorIndex(dimension: dimension, metric: .l2,
                                kind: .hnsw(HNSWSettings(m: m, efConstruction: efConstruction, ef: 64)),
                                planner: SearchPlanner(exactScanVectorsMax: 0))
        let start = Bench.monotonicSeconds()
        for row in 0..<count { try index.upsert(String(row), vector: data[row], eligibleUntil: .max) }
        let buildSeconds = Bench.monotonicSeconds() - start
        Output.line(String(format: "    built in %.1f s (%.0f inserts/s) with %@", buildSeconds, Double(count) / buildSeconds,
                           VectorKernels.Level.current.description))
        var baseline: [Int: Double] = [:]
        for level in VectorKernels.Level.supported {
            VectorKernels.use(level)
            var cells: [String] = []
            for ef in efs {
                let (recall, qps) = try BenchVectorsCommand.sweepPoint(index, queries: queries, truth: truth, ef: ef, now: 0)
                if level == .sse2 || level == .neon { baseline[ef] = qps }
                let ratio = baseline[ef].map { String(format: ", %.2f× sse2", qps / $0) } ?? ""
                cells.append(String(format: "ef %d: %6.0f q/s (recall %.3f%@)", ef, qps, recall, ratio))
            }
            Output.line("    " + level.description.padding(toLength: 10, withPad: " ", startingAt: 0) + cells.joined(separator: "  "))
        }
    }
}

/// The kernel `VectorKernels` was before issue 18, kept here only as the
/// benchmark's baseline: portable Swift SIMD, four 8-lane accumulators, a
/// scalar tail. In a baseline x86-64 build `SIMD8<Float>` becomes pairs of
/// SSE multiplies and adds.
enum SwiftSIMD8Kernel {
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i + 32 <= count {
            let o = i &* 4
            s0 += load(ra, o) * load(rb, o)
            s1 += load(ra, o &+ 32) * load(rb, o &+ 32)
            s2 += load(ra, o &+ 64) * load(rb, o &+ 64)
            s3 += load(ra, o &+ 96) * load(rb, o &+ 96)
            i &+= 32
        }
        while i + 8 <= count {
            s0 += load(ra, i &* 4) * load(rb, i &* 4)
            i &+= 8
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < count {
            sum += a[i] * b[i]
            i &+= 1
        }
        return sum
    }

    static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i + 32 <= count {
            let o = i &* 4
            let d0 = load(ra, o) - load(rb, o), d1 = load(ra, o &+ 32) - load(rb, o &+ 32)
            let d2 = load(ra, o &+ 64) - load(rb, o &+ 64), d3 = load(ra, o &+ 96) - load(rb, o &+ 96)
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            i &+= 32
        }
        while i + 8 <= count {
            let d = load(ra, i &* 4) - load(rb, i &* 4)
            s0 += d * d
            i &+= 8
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < count {
            let d = a[i] - b[i]
            sum += d * d
            i &+= 1
        }
        return sum
    }

    @inline(__always)
    private static func load(_ base: UnsafeRawPointer, _ byteOffset: Int) -> SIMD8<Float> {
        base.loadUnaligned(fromByteOffset: byteOffset, as: SIMD8<Float>.self)
    }
}
