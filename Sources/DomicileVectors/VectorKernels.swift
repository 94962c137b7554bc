/// Distance kernels over `Float` vectors. Four independent 8-lane
/// accumulators keep the adder pipelines busy, so a flat scan runs at
/// memory bandwidth (docs/BENCHMARKS.md); the tail is summed in scalar.
/// Portable SIMD: the compiler maps `SIMD8<Float>` to whatever vector unit
/// the build targets, with no per-CPU code paths to test.
public enum VectorKernels {
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
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

    @inline(__always)
    public static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
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
