import CVectorKernels

/// Distance kernels over `Float` vectors: thin calls into `CVectorKernels`,
/// which compiles each kernel for several instruction sets (SSE2, AVX2+FMA,
/// AVX-512F on x86-64; NEON on arm64) and picks the best this CPU runs when
/// the process starts. The call is one load of a function pointer and an
/// indirect call; the pointers need no alignment.
public enum VectorKernels {
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        domicile_dot(a, b, count)
    }

    @inline(__always)
    public static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        domicile_squared_l2(a, b, count)
    }

    /// An instruction-set level the kernels are compiled for.
    public struct Level: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32

        public static let scalar = Level(rawValue: Int32(DOMICILE_KERNEL_SCALAR.rawValue))
        public static let sse2 = Level(rawValue: Int32(DOMICILE_KERNEL_SSE2.rawValue))
        public static let avx2FMA = Level(rawValue: Int32(DOMICILE_KERNEL_AVX2_FMA.rawValue))
        public static let avx512F = Level(rawValue: Int32(DOMICILE_KERNEL_AVX512F.rawValue))
        public static let neon = Level(rawValue: Int32(DOMICILE_KERNEL_NEON.rawValue))
        /// Every level, lowest first; not all exist on one CPU.
        public static let all: [Level] = [.scalar, .sse2, .neon, .avx2FMA, .avx512F]

        /// Whether this build and this CPU can run it.
        public var isSupported: Bool { domicile_vectors_level_supported(rawValue) != 0 }
        /// "avx2+fma", for logs and benchmark output.
        public var description: String { String(cString: domicile_vectors_level_name(rawValue)) }

        /// The level in use.
        public static var current: Level { Level(rawValue: domicile_vectors_level()) }
        /// The best this CPU supports: the level chosen at startup.
        public static var best: Level { Level(rawValue: domicile_vectors_best_level()) }
        /// The levels this CPU supports, lowest first.
        public static var supported: [Level] { all.filter(\.isSupported) }
    }

    /// Switches every caller to `level` (tests and benchmarks compare
    /// levels); returns false, changing nothing, if it is not supported.
    @discardableResult
    public static func use(_ level: Level) -> Bool {
        domicile_vectors_set_level(level.rawValue) != 0
    }

    /// One level's kernels as plain functions, without switching; nil if unsupported.
    public static func kernels(at level: Level) -> (dot: DistanceFunction, squaredDistance: DistanceFunction)? {
        guard let dot = domicile_vectors_dot_at(level.rawValue), let squared = domicile_vectors_squared_l2_at(level.rawValue) else { return nil }
        return (dot, squared)
    }

    public typealias DistanceFunction = @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float
}

/// A metric's distance as the kernel in use, loaded once (a C function
/// pointer: no closure context, no reference counting) and an exact affine
/// map of its result: 1 − a·b for cosine, −a·b for dot, Σ(a−b)² for l2.
/// A graph search takes one when it starts and calls it for every distance,
/// so the metric's switch and the kernel pointer's load leave the loop.
struct DistanceKernel {
    let function: VectorKernels.DistanceFunction
    let offset: Float
    let sign: Float

    init(_ metric: Metric) {
        switch metric {
        case .cosine: (function, offset, sign) = (domicile_dot_function(), 1, -1)
        case .dot: (function, offset, sign) = (domicile_dot_function(), 0, -1)
        case .l2: (function, offset, sign) = (domicile_squared_l2_function(), 0, 1)
        }
    }

    /// The metric's distance; equal bit for bit to `Metric.distance`
    /// (multiplying by ±1 is exact, and 1 + (−x) is 1 − x).
    @inline(__always)
    func callAsFunction(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        offset + sign * function(a, b, count)
    }
}
