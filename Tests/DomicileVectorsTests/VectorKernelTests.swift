import DomicileModel
import XCTest
@testable import DomicileVectors

final class VectorKernelTests: XCTestCase {
    private func reference(_ a: [Float], _ b: [Float]) -> (dot: Double, squared: Double) {
        var dot = 0.0, squared = 0.0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            squared += Double(x - y) * Double(x - y)
        }
        return (dot, squared)
    }

    func test_kernels_matchScalarReference_forEveryLengthAndTail() {
        var random = SeededRandom(seed: 7)
        for count in Array(1...70) + [127, 128, 384, 1_000] {
            let a = (0..<count).map { _ in Float(random.next() % 2_001) / 1_000 - 1 }
            let b = (0..<count).map { _ in Float(random.next() % 2_001) / 1_000 - 1 }
            let expected = reference(a, b)
            let dot = a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { VectorKernels.dot(a.baseAddress!, $0.baseAddress!, count: count) } }
            let squared = a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { VectorKernels.squaredDistance(a.baseAddress!, $0.baseAddress!, count: count) }
            }
            XCTAssertEqual(Double(dot), expected.dot, accuracy: 1e-4 * Double(count), "dot, count \(count)")
            XCTAssertEqual(Double(squared), expected.squared, accuracy: 1e-4 * Double(count), "squared L2, count \(count)")
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
