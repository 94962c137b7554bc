import DomicileModel
import XCTest
@testable import DomicileVectors

/// `RecallCalibration` picks the smallest ef whose recall on the index's own
/// vectors reaches the target, and that ef reaches it on queries it never saw.
final class RecallCalibrationTests: XCTestCase {
    /// Held-out queries may score a little below the in-sample estimate: 200
    /// sampled queries estimate recall@10 to about ±0.01, and held-out
    /// queries are not stored vectors. The stated tolerance.
    static let tolerance = 0.03

    func test_calibratedEF_reachesTheTargetOnHeldOutQueries() throws {
        let (data, queries) = SyntheticVectors.clustered(count: 4_200, dimension: 32, clusters: 30, seed: 7).split(at: 4_000)
        let index = VectorIndex(dimension: 32, metric: .l2, kind: .hnsw(HNSWSettings(m: 4, efConstruction: 16, ef: 10)))
        for row in 0..<data.count { try index.upsert("v\(row)", vector: data[row], eligibleUntil: .max) }
        for target in [0.9, 0.95, 0.99] {
            let calibration = try XCTUnwrap(RecallCalibration.measure(index, target: target, seed: 1))
            XCTAssertEqual(calibration.vectors, 4_000)
            XCTAssertEqual(calibration.sample, RecallCalibration.sampleSize)
            XCTAssertGreaterThanOrEqual(calibration.estimatedRecall, target, "ef \(calibration.ef)")
            var found = 0
            for row in 0..<queries.count {
                let truth = Set(try index.exactSearch(queries[row], k: 10, now: 0).map(\.label))
                found += try index.graphSearch(queries[row], k: 10, ef: calibration.ef, now: 0).filter { truth.contains($0.label) }.count
            }
            let heldOut = Double(found) / Double(queries.count * 10)
            XCTAssertGreaterThanOrEqual(heldOut, target - Self.tolerance, "target \(target): ef \(calibration.ef)")
            // The smallest such width: one rung narrower falls short of the target in the same sample.
            if let rung = RecallCalibration.ladder.firstIndex(of: calibration.ef), rung > 0 {
                let narrower = try XCTUnwrap(RecallCalibration.measure(index, target: target, seed: 1, ladder: [RecallCalibration.ladder[rung - 1]]))
                XCTAssertLessThan(narrower.estimatedRecall, target)
            }
        }
    }

    func test_tooSmallOrFlatIndexes_areNotMeasured() throws {
        let flat = VectorIndex(dimension: 4, metric: .l2, kind: .flat)
        let graph = VectorIndex(dimension: 4, metric: .l2, kind: .hnsw(HNSWSettings()))
        for row in 0..<20 {
            try flat.upsert("v\(row)", vector: [Float(row), 1, 2, 3], eligibleUntil: .max)
            if row < 5 { try graph.upsert("v\(row)", vector: [Float(row), 1, 2, 3], eligibleUntil: .max) }
        }
        XCTAssertNil(RecallCalibration.measure(flat, target: 0.9, seed: 1))
        XCTAssertNil(RecallCalibration.measure(graph, target: 0.9, seed: 1))
    }

    func test_sample_drawsDistinctLiveVectors() throws {
        let index = VectorIndex(dimension: 2, metric: .l2, kind: .hnsw(HNSWSettings()))
        for row in 0..<300 { try index.upsert("v\(row)", vector: [Float(row), 1], eligibleUntil: .max) }
        for row in stride(from: 0, to: 300, by: 2) { index.remove("v\(row)") }
        let sample = index.sample(100, seed: 3)
        XCTAssertEqual(sample.count, 100)
        XCTAssertEqual(Set(sample.map(\.label)).count, 100)
        for (label, vector) in sample { XCTAssertEqual(index.vector(of: label), vector) }
        XCTAssertEqual(index.sample(1_000, seed: 3).count, 150, "all live vectors when asked for more")
    }
}
