import DomicileTestSupport
import Foundation
import XCTest

/// `domicile bench federated-utility`, the built binary, on a tiny set: the
/// clipping and grid alone lose nothing, the noise costs recall as ε
/// shrinks, and the CSV has a row per (ε, clip norm).
final class BenchFederatedUtilityTests: XCTestCase {
    struct CSVRow {
        let epsilon: String
        let clipRatio: Double
        let clippedFraction: Double
        let sigma: Double
        let recall: Double
        let recallCalibrated: Double
        let remoteCandidateRecall: Double
    }

    func run(_ extra: [String], csv: String) throws -> [CSVRow] {
        let result = try Binary.run(["bench", "federated-utility", "--count", "900", "--queries", "60", "--dimension", "32",
                                     "--clusters", "9", "--seed", "7", "--epsilons", "1,4,16,inf", "--clip-ratios", "0.5,3",
                                     "--csv", csv] + extra)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("norms: min"), result.stdout)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first, "dataset,metric,epsilon,delta,clip_ratio,clip_norm,clipped_fraction,sigma,recall_at_10,"
                       + "recall_at_10_calibrated,remote_recall,remote_candidate_recall,recall_bound")
        return lines.dropFirst().map { line in
            let fields = line.split(separator: ",").map(String.init)
            return CSVRow(epsilon: fields[2], clipRatio: Double(fields[4])!, clippedFraction: Double(fields[6])!, sigma: Double(fields[7])!,
                          recall: Double(fields[8])!, recallCalibrated: Double(fields[9])!, remoteCandidateRecall: Double(fields[11])!)
        }
    }

    func test_recallIsWholeWithoutNoise_andFallsAsEpsilonShrinks() throws {
        let directory = TemporaryDirectory("federated-utility")
        let rows = try run([], csv: directory.file("curve.csv"))
        XCTAssertEqual(rows.map(\.epsilon), ["1", "1", "4", "4", "16", "16", "inf", "inf"], "a row per (epsilon, clip ratio), in order")
        XCTAssertEqual(rows.map(\.clipRatio), [0.5, 3, 0.5, 3, 0.5, 3, 0.5, 3])

        let unclipped = try XCTUnwrap(rows.first { $0.epsilon == "inf" && $0.clipRatio == 3 })
        XCTAssertEqual(unclipped.clippedFraction, 0, "a clip of 3× the median norm is above every norm")
        XCTAssertEqual(unclipped.sigma, 0)
        XCTAssertGreaterThanOrEqual(unclipped.recall, 0.99, "the grid alone barely moves a vector")
        XCTAssertGreaterThanOrEqual(unclipped.remoteCandidateRecall, 0.99)

        for ratio in [0.5, 3.0] {
            let curve = rows.filter { $0.clipRatio == ratio }  // ε = 1, 4, 16, ∞
            XCTAssertEqual(curve.map { $0.sigma > 0 }, [true, true, true, false])
            XCTAssertEqual(curve.map(\.sigma), curve.map(\.sigma).sorted(by: >), "less ε, more noise")
            for (smaller, larger) in zip(curve, curve.dropFirst()) {
                XCTAssertLessThanOrEqual(smaller.remoteCandidateRecall, larger.remoteCandidateRecall + 0.05,
                                         "ε \(smaller.epsilon) against \(larger.epsilon) at clip ratio \(ratio)")
                XCTAssertLessThanOrEqual(smaller.recallCalibrated, larger.recallCalibrated + 0.05)
            }
            XCTAssertLessThan(curve[0].remoteCandidateRecall, curve[3].remoteCandidateRecall - 0.2, "noise at ε = 1 costs recall")
        }
    }

    func test_readsANumPyDataset_andRefusesAWrongCommandLine() throws {
        let directory = TemporaryDirectory("federated-utility-npy")
        // 300 rows × 8 dimensions: three well-separated groups, in NumPy's format (version 1, '<f4', C order).
        var values: [Float] = []
        for row in 0..<300 { for column in 0..<8 { values.append(Float((row % 3 == column % 3) ? 1 : 0) + Float((row * 31 + column * 7) % 97) / 970) } }
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (300, 8), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        values.withUnsafeBytes { bytes += $0 }
        let path = directory.file("vectors.npy")
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let csv = directory.file("curve.csv")
        let result = try Binary.run(["bench", "federated-utility", "--dataset", path, "--queries", "20", "--epsilons", "inf",
                                     "--clip-ratios", "4", "--csv", csv])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("vectors, 280 × 8"), result.stdout)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[1].hasPrefix("vectors,cosine,inf,1e-06,4,"), String(lines[1]))

        try Data("not numpy".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try Binary.run(["bench", "federated-utility", "--dataset", path]).status, 1)
        XCTAssertEqual(try Binary.run(["bench", "federated-utility", "--epsilons", "0"]).status, 2)
        XCTAssertEqual(try Binary.run(["bench", "federated-utility", "--clip-ratios", "inf"]).status, 2)
        XCTAssertEqual(try Binary.run(["bench", "federated-utility", "--metric", "hamming"]).status, 2)
    }
}
