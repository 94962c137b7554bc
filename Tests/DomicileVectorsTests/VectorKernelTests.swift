import DomicileModel
import XCTest
@testable import DomicileVectors

final class VectorKernelTests: XCTestCase {
    // Every kernel level against the scalar reference (one accumulator, in
    // index order), on every length 0...130 (every tail of every unrolled
    // loop and masked load) and a few embedding sizes, from aligned and
    // unaligned addresses. Two checks per level:
    //  - exact: components are small integers, so every partial sum is an
    //    integer below 2^24 and exact in Float in any order; a kernel must
    //    then equal the reference bit for bit (a dropped, doubled or
    //    misread element cannot hide in a tolerance);
    //  - reals: seeded uniform components in [-1, 1); the levels sum in
    //    different orders (lanes, then a tree), so each may differ from the
    //    exact (Double) sum by float reassociation only, bounded for any
    //    order by (n + 3) · 2^-24 · Σ|term| (n additions; the product, and
    //    the difference for L2, add a few roundings per term; FMA fewer).

    static let lengths = Array(0...130) + [384, 768, 1_536, 4_096]
    /// Offsets in floats from a 64-byte aligned base: aligned, and unaligned for every vector width.
    static let offsets = [0, 1, 2, 3, 5, 7]
    static let unitRoundoff = 0x1p-24

    func test_sse2_matchesScalarReference_onEveryLengthTailAndAlignment() throws { try checkAgainstReference(.sse2) }
    func test_avx2FMA_matchesScalarReference_onEveryLengthTailAndAlignment() throws { try checkAgainstReference(.avx2FMA) }
    func test_avx512F_matchesScalarReference_onEveryLengthTailAndAlignment() throws { try checkAgainstReference(.avx512F) }
    func test_neon_matchesScalarReference_onEveryLengthTailAndAlignment() throws { try checkAgainstReference(.neon) }

    func test_scalarReference_isExactOnSmallIntegers_andWithinItsBoundOnReals() throws { try checkAgainstReference(.scalar) }

    private func checkAgainstReference(_ level: VectorKernels.Level) throws {
        guard let kernels = VectorKernels.kernels(at: level) else {
            throw XCTSkip("kernel level \(level) is not compiled for this architecture or this CPU lacks it")
        }
        let reference = try XCTUnwrap(VectorKernels.kernels(at: .scalar))
        var random = SeededRandom(seed: 18)
        let capacity = Self.lengths.max()! + Self.offsets.max()!
        let a = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: Float.self, capacity: capacity)
        let b = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: Float.self, capacity: capacity)
        defer { a.deallocate(); b.deallocate() }
        for count in Self.lengths {
            for offset in Self.offsets {
                let x = UnsafePointer(a + offset), y = UnsafePointer(b + offset)
                // Exact: integers in -3...3.
                for i in 0..<count {
                    a[offset + i] = Float(Int(random.next() % 7) - 3)
                    b[offset + i] = Float(Int(random.next() % 7) - 3)
                }
                var exactDot = 0, exactSquared = 0
                for i in 0..<count {
                    let p = Int(x[i]), q = Int(y[i])
                    exactDot += p * q
                    exactSquared += (p - q) * (p - q)
                }
                let context = "\(level), count \(count), offset \(offset)"
                XCTAssertEqual(reference.dot(x, y, count), Float(exactDot), "scalar dot, \(context)")
                XCTAssertEqual(reference.squaredDistance(x, y, count), Float(exactSquared), "scalar squared L2, \(context)")
                XCTAssertEqual(kernels.dot(x, y, count), Float(exactDot), "dot on integers, \(context)")
                XCTAssertEqual(kernels.squaredDistance(x, y, count), Float(exactSquared), "squared L2 on integers, \(context)")

                // Reals: uniform in [-1, 1).
                for i in 0..<count {
                    a[offset + i] = Float(Int(random.next() >> 40)) / Float(1 << 23) - 1
                    b[offset + i] = Float(Int(random.next() >> 40)) / Float(1 << 23) - 1
                }
                var dot = 0.0, dotMagnitude = 0.0, squared = 0.0
                for i in 0..<count {
                    let p = Double(x[i]), q = Double(y[i])
                    dot += p * q
                    dotMagnitude += abs(p * q)
                    squared += (p - q) * (p - q)
                }
                let factor = Double(count + 3) * Self.unitRoundoff
                for (name, function, exact, magnitude) in [("dot", kernels.dot, dot, dotMagnitude),
                                                           ("squared L2", kernels.squaredDistance, squared, squared),
                                                           ("scalar dot", reference.dot, dot, dotMagnitude),
                                                           ("scalar squared L2", reference.squaredDistance, squared, squared)] {
                    XCTAssertEqual(Double(function(x, y, count)), exact, accuracy: factor * magnitude, "\(name) on reals, \(context)")
                }
            }
        }
    }

    func test_dispatch_startsAtTheBestLevel_switchesEveryCaller_andRefusesWhatTheCPULacks() throws {
        defer { VectorKernels.use(.best) }
        XCTAssertEqual(VectorKernels.Level.current, .best, "the level chosen at startup")
        XCTAssertTrue(VectorKernels.Level.best.isSupported)
        #if arch(x86_64)
        XCTAssertTrue(VectorKernels.Level.sse2.isSupported, "every x86-64 CPU has SSE2")
        XCTAssertFalse(VectorKernels.Level.neon.isSupported)
        XCTAssertFalse(VectorKernels.use(.neon))
        XCTAssertEqual(VectorKernels.Level.current, .best, "a refused level changes nothing")
        #elseif arch(arm64)
        XCTAssertTrue(VectorKernels.Level.neon.isSupported, "every arm64 CPU has NEON")
        XCTAssertFalse(VectorKernels.Level.avx2FMA.isSupported)
        #endif
        XCTAssertFalse(VectorKernels.use(VectorKernels.Level(rawValue: 99)))
        XCTAssertEqual(VectorKernels.Level(rawValue: 99).description, "unknown")

        // Reals whose sum depends on the order, so each level's own answer is recognisable.
        let count = 1_000
        var random = SeededRandom(seed: 3)
        let a = (0..<count).map { _ in Float(Int(random.next() >> 40)) / Float(1 << 23) - 1 }
        let b = (0..<count).map { _ in Float(Int(random.next() >> 40)) / Float(1 << 23) - 1 }
        for level in VectorKernels.Level.supported {
            XCTAssertTrue(VectorKernels.use(level), "\(level)")
            XCTAssertEqual(VectorKernels.Level.current, level)
            let kernels = try XCTUnwrap(VectorKernels.kernels(at: level))
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    let (x, y) = (a.baseAddress!, b.baseAddress!)
                    XCTAssertEqual(VectorKernels.dot(x, y, count: count), kernels.dot(x, y, count), "\(level)")
                    XCTAssertEqual(VectorKernels.squaredDistance(x, y, count: count), kernels.squaredDistance(x, y, count), "\(level)")
                }
            }
        }
    }

    func test_prepare_refusesWrongDimensionNaNInfinityAndZeroForCosine() {
        XCTAssertThrowsError(try Metric.l2.prepare([1, 2], dimension: 3)) { XCTAssertEqual($0 as? VectorError, .wrongDimension(expected: 3, got: 2)) }
        XCTAssertThrowsError(try Metric.dot.prepare([1, .nan, 2], dimension: 3)) { XCTAssertEqual($0 as? VectorError, .notFinite) }
        XCTAssertThrowsError(try Metric.l2.prepare([1, .infinity, 2], dimension: 3)) { XCTAssertEqual($0 as? VectorError, .notFinite) }
        XCTAssertThrowsError(try Metric.cosine.prepare([0, 0, 0], dimension: 3)) { XCTAssertEqual($0 as? VectorError, .zeroNorm) }
        XCTAssertThrowsError(try Metric.dot.prepare([1, 2e15, 2], dimension: 3)) { XCTAssertEqual($0 as? VectorError, .outOfRange(1e15)) }
        XCTAssertEqual(try Metric.l2.prepare([0, 0, 0], dimension: 3), [0, 0, 0])
        XCTAssertEqual(try Metric.cosine.prepare([3, 4], dimension: 2), [0.6, 0.8])
    }

    func test_scores_areInTheMetricsOwnTerms() throws {
        for metric in Metric.allCases {
            let index = VectorIndex(dimension: 2, metric: metric, kind: .flat)
            try index.upsert("a", vector: [3, 4], eligibleUntil: .max)
            let hit = try XCTUnwrap(index.search([3, 4], k: 1, now: 0).hits.first)
            switch metric {
            case .cosine: XCTAssertEqual(hit.score, 1, accuracy: 1e-6)
            case .dot: XCTAssertEqual(hit.score, 25, accuracy: 1e-5)
            case .l2: XCTAssertEqual(hit.score, 0, accuracy: 1e-6)
            }
        }
    }
}
