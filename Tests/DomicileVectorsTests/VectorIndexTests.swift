import Synchronization
import DomicileModel
import XCTest
@testable import DomicileVectors

final class VectorIndexTests: XCTestCase {
    static let (data, queries) = SyntheticVectors.clustered(count: 6_100, dimension: 48, clusters: 40, seed: 11).split(at: 6_000)
    static let graph = IndexKind.hnsw(HNSWSettings(m: 12, efConstruction: 100, ef: 64))

    private func build(_ metric: Metric = .l2, kind: IndexKind = graph, count: Int? = nil,
                       eligibleUntil: (Int) -> Int64 = { _ in .max }) throws -> VectorIndex {
        let index = VectorIndex(dimension: Self.data.dimension, metric: metric, kind: kind,
                                planner: SearchPlanner(exactScanVectorsMax: 0))
        for row in 0..<(count ?? Self.data.count) { try index.upsert("v\(row)", vector: Self.data[row], eligibleUntil: eligibleUntil(row)) }
        return index
    }

    /// Mean recall@k of `found` against the exact answer.
    private func recall(_ index: VectorIndex, k: Int = 10, now: Int64 = 0,
                        search: (VectorIndex, [Float]) throws -> [SearchHit]) throws -> Double {
        var total = 0.0
        for row in 0..<Self.queries.count {
            let query = Self.queries[row]
            let truth = Set(try index.exactSearch(query, k: k, now: now).map(\.label))
            let found = Set(try search(index, query).map(\.label))
            total += truth.isEmpty ? 1 : Double(found.intersection(truth).count) / Double(truth.count)
        }
        return total / Double(Self.queries.count)
    }

    func test_hnsw_recallAt10_againstExact_onClusteredData_forEveryMetric() throws {
        for metric in Metric.allCases {
            let index = try build(metric)
            let value = try recall(index) { try $0.search($1, k: 10, now: 0).hits }
            XCTAssertGreaterThanOrEqual(value, 0.95, "\(metric) recall@10")
            XCTAssertEqual(index.choosePlan(now: 0), .graph)
        }
    }

    func test_search_returnsNearestFirst_andAtMostK() throws {
        let index = try build(count: 500)
        let hits = try index.search(Self.queries[0], k: 7, now: 0).hits
        XCTAssertEqual(hits.count, 7)
        XCTAssertEqual(hits.map(\.score), hits.map(\.score).sorted())
    }

    func test_deletedVectors_areNeverReturned_andRecallHoldsUnderChurn() throws {
        let index = try build()
        var random = SeededRandom(seed: 3)
        var deleted = Set<String>()
        // Three rounds: delete a third of what is there, insert as many new vectors.
        var next = Self.data.count
        for _ in 0..<3 {
            let present = (0..<next).map { "v\($0)" }.filter { !deleted.contains($0) }
            for label in present where random.next() % 3 == 0 {
                XCTAssertTrue(index.remove(label))
                deleted.insert(label)
            }
            let fresh = SyntheticVectors.clustered(count: deleted.count / 3, dimension: Self.data.dimension, clusters: 40, seed: UInt64(next))
            for row in 0..<fresh.count {
                try index.upsert("v\(next)", vector: fresh[row], eligibleUntil: .max)
                next += 1
            }
        }
        XCTAssertFalse(index.remove("v0") && deleted.contains("v0"), "a removed label is not removed twice")
        for row in 0..<Self.queries.count {
            let hits = try index.search(Self.queries[row], k: 20, now: 0).hits
            XCTAssertTrue(hits.allSatisfy { !deleted.contains($0.label) }, "query \(row) returned a deleted vector")
            XCTAssertTrue(try index.exactSearch(Self.queries[row], k: 20, now: 0).allSatisfy { !deleted.contains($0.label) })
        }
        let value = try recall(index) { try $0.search($1, k: 10, now: 0).hits }
        XCTAssertGreaterThanOrEqual(value, 0.93, "recall after churn")
    }

    func test_removingEverything_leavesAnEmptyIndexThatStillAcceptsInserts() throws {
        let index = try build(count: 300)
        for row in 0..<300 { index.remove("v\(row)") }
        XCTAssertEqual(index.count, 0)
        XCTAssertEqual(try index.search(Self.queries[0], k: 5, now: 0).hits, [])
        try index.upsert("again", vector: Self.data[5], eligibleUntil: .max)
        XCTAssertEqual(try index.search(Self.data[5], k: 5, now: 0).hits.map(\.label), ["again"])
    }

    func test_upsert_replacesTheVector() throws {
        let index = try build(count: 1_000)
        try index.upsert("v1", vector: Self.data[2_000], eligibleUntil: .max)
        XCTAssertEqual(index.count, 1_000)
        XCTAssertEqual(try index.search(Self.data[2_000], k: 1, now: 0).hits.first?.label, "v1")
        XCTAssertEqual(index.vector(of: "v1"), Self.data[2_000])
    }

    func test_filteredSearch_recallHolds_at50_10_and1PercentEligible() throws {
        for (percent, minimum) in [(50, 0.95), (10, 0.93), (1, 0.9)] {
            var random = SeededRandom(seed: UInt64(percent))
            let index = try build { _ in random.next() % 100 < UInt64(percent) ? .max : 0 }
            let now: Int64 = 1
            // The graph walk itself, filter inside the traversal.
            let walked = try recall(index, now: now) { try $0.graphSearch($1, k: 10, ef: 64, now: now) }
            XCTAssertGreaterThanOrEqual(walked, minimum, "graph walk with \(percent)% eligible")
            // What a caller gets: the planner's choice.
            let planned = try recall(index, now: now) { try $0.search($1, k: 10, now: now).hits }
            XCTAssertGreaterThanOrEqual(planned, max(minimum, 0.95), "planned search with \(percent)% eligible")
            // Above 1% the choice follows the measured costs and the index's size (SearchPlannerTests).
            if percent == 1 { XCTAssertEqual(index.choosePlan(now: now), .exact) }
            for row in 0..<20 {
                let hits = try index.search(Self.queries[row], k: 10, now: now).hits
                XCTAssertEqual(hits.count, 10)
                let eligible = Set(try index.exactSearch(Self.queries[row], k: Self.data.count, now: now).map(\.label))
                XCTAssertTrue(hits.allSatisfy { eligible.contains($0.label) }, "an ineligible vector was returned")
            }
        }
    }

    func test_eligibilityDeadline_isHonoredAtSearchTime_andCanMove() throws {
        let index = try build(kind: .flat, count: 100) { row in row < 50 ? 1_000 : .max }
        let before = try index.search(Self.data[3], k: 100, now: 999).hits.map(\.label)
        XCTAssertTrue(before.contains("v3"))
        let after = try index.search(Self.data[3], k: 100, now: 1_000).hits.map(\.label)
        XCTAssertFalse(after.contains("v3"))
        XCTAssertEqual(after.count, 50)
        index.setEligibleUntil("v3", 5_000)
        XCTAssertTrue(try index.search(Self.data[3], k: 100, now: 1_000).hits.map(\.label).contains("v3"))
    }

    func test_sameInsertsInSameOrder_buildTheSameGraph() throws {
        let first = try build(count: 3_000)
        let second = try build(count: 3_000)
        for row in 0..<30 {
            XCTAssertEqual(try first.search(Self.queries[row], k: 10, now: 0).hits, try second.search(Self.queries[row], k: 10, now: 0).hits)
        }
    }

    /// Searches on other threads while the writer removes and inserts: a
    /// removal that returned before a search began is never in its results.
    func test_concurrentSearches_neverSeeARemovalThatReturnedBeforeThem() throws {
        let index = try build(count: 4_000)
        let removed = Mutex<Set<String>>([])
        let failures = Atomic<Int>(0)
        let short = Atomic<Int>(0)
        let searches = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let group = DispatchGroup()
        for thread in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                var row = thread
                while !done.load(ordering: .acquiring) {
                    let before = removed.withLock { $0 }
                    let hits = (try? index.search(Self.queries[row % Self.queries.count], k: 10, now: 0).hits) ?? []
                    if hits.contains(where: { before.contains($0.label) }) { failures.add(1, ordering: .relaxed) }
                    if hits.count != 10 { short.add(1, ordering: .relaxed) }
                    searches.add(1, ordering: .relaxed)
                    row += 2
                }
                group.leave()
            }
        }
        var random = SeededRandom(seed: 5)
        for step in 0..<1_500 {
            let label = "v\(random.next() % 4_000)"
            if index.remove(label) { removed.withLock { _ = $0.insert(label) } }
            try index.upsert("n\(step)", vector: Self.data[4_000 + step % 2_000], eligibleUntil: .max)
        }
        done.store(true, ordering: .releasing)
        group.wait()
        XCTAssertEqual(failures.load(ordering: .relaxed), 0, "results held a removed vector")
        XCTAssertEqual(short.load(ordering: .relaxed), 0, "fewer than k results")
        XCTAssertGreaterThan(searches.load(ordering: .relaxed), 10)
        for row in 0..<Self.queries.count {
            let set = removed.withLock { $0 }
            XCTAssertTrue(try index.search(Self.queries[row], k: 10, now: 0).hits.allSatisfy { !set.contains($0.label) })
        }
    }
}
