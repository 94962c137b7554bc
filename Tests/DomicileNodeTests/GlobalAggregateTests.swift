@testable import DomicileNode
import DomicileModel
import XCTest

/// The global view's combination (docs/DECISIONS.md, "The global view of an
/// aggregate"): sums add up, histograms per category over the union of
/// categories, means average without weights; variances add; ε is the
/// largest; a region of another kind is set aside, not combined.
final class GlobalAggregateTests: XCTestCase {
    func release(_ region: String, kind: String = "count", _ result: AggregateResult, sigma: Double, epsilon: Double) -> Release {
        Release(releaseID: "rl_\(region)", region: region, name: "visits", kind: kind, dataset: "crm", result: result,
                mechanism: "laplace", epsilon: epsilon, delta: 0, noiseScale: sigma, releasedAt: Timestamp(milliseconds: 0))
    }

    func test_counts_addUp_varianceAdds_andEpsilonIsTheLargest() throws {
        let view = try XCTUnwrap(GlobalAggregate(latest: [release("eu", .value(10), sigma: 3, epsilon: 1),
                                                          release("us", .value(20), sigma: 4, epsilon: 2)],
                                                 regions: ["br", "eu", "us"], preferred: "eu"))
        XCTAssertEqual(view.combinedAs, .sum)
        XCTAssertEqual(view.result, .value(30))
        XCTAssertEqual(view.noiseScale, 5, accuracy: 1e-12, "√(3² + 4²)")
        XCTAssertEqual(view.intervalHalfWidth, 1.959_963_984_540_054 * 5, accuracy: 1e-9)
        XCTAssertEqual(view.epsilon, 2)
        XCTAssertEqual(view.missingRegions, ["br"])
        XCTAssertEqual(view.releases.map(\.region), ["eu", "us"])
    }

    func test_histograms_addUpPerCategory_overTheUnionOfCategories() throws {
        let view = try XCTUnwrap(GlobalAggregate(latest: [release("eu", kind: "histogram", .values([("gold", 2), ("silver", 3)]), sigma: 1, epsilon: 1),
                                                          release("us", kind: "histogram", .values([("gold", 5), ("bronze", 1)]), sigma: 1, epsilon: 1)],
                                                 regions: ["eu", "us"], preferred: "us"))
        XCTAssertEqual(view.result, .values([("bronze", 1), ("gold", 7), ("silver", 3)]))
    }

    func test_means_areAveragedWithoutWeights_andAnotherKindIsSetAside() throws {
        let view = try XCTUnwrap(GlobalAggregate(latest: [release("eu", kind: "mean", .value(10), sigma: 2, epsilon: 1),
                                                          release("us", kind: "mean", .value(20), sigma: 2, epsilon: 1),
                                                          release("br", kind: "sum", .value(999), sigma: 9, epsilon: 5)],
                                                 regions: ["br", "eu", "us"], preferred: "eu"))
        XCTAssertEqual(view.combinedAs, .unweightedMean)
        XCTAssertEqual(view.result, .value(15))
        XCTAssertEqual(view.noiseScale, (8.0).squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(view.epsilon, 1, "the set-aside region's ε does not count")
        XCTAssertEqual(view.mismatchedRegions, ["br"])
        XCTAssertNil(GlobalAggregate(latest: [], regions: ["eu"], preferred: "eu"), "no release anywhere")
    }
}

/// Aggregates as CSV for BI tools: RFC 4180 quoting, CRLF lines, and no
/// text a spreadsheet would run as a formula.
final class AggregateCSVTests: XCTestCase {
    func test_fields_areQuotedWhenNeeded_andFormulasAreDefused() {
        XCTAssertEqual(AggregateCSV.field("gold"), "gold")
        XCTAssertEqual(AggregateCSV.field("a,b"), "\"a,b\"")
        XCTAssertEqual(AggregateCSV.field("say \"hi\""), "\"say \"\"hi\"\"\"")
        XCTAssertEqual(AggregateCSV.field("line\nbreak"), "\"line\nbreak\"")
        XCTAssertEqual(AggregateCSV.field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"")
        XCTAssertEqual(AggregateCSV.field("@SUM(A1)"), "'@SUM(A1)")
        XCTAssertEqual(AggregateCSV.field("-3.5"), "-3.5", "a number is left as it is")
    }

    func test_aReleasesRows_carryItsNoiseAndInterval_perCategory() {
        let release = Release(releaseID: "rl_1", region: "eu", name: "segments", kind: "histogram", dataset: "crm",
                              result: .values([("gold", 6), ("silver, plated", 2)]), mechanism: "laplace", epsilon: 1, delta: 0,
                              noiseScale: 2, releasedAt: Timestamp(milliseconds: 0))
        let lines = AggregateCSV.document(AggregateCSV.rows(of: release)).components(separatedBy: "\r\n")
        XCTAssertEqual(lines.first, AggregateCSV.header.joined(separator: ","))
        XCTAssertEqual(lines.count, 4, "the header, a row per category, and the final CRLF's empty remainder")
        XCTAssertTrue(lines[1].hasPrefix("region,eu,rl_1,segments,histogram,gold,6.0,2.0,0.95,"), lines[1])
        XCTAssertTrue(lines[2].contains(",\"silver, plated\",2.0,"), lines[2])
    }
}
