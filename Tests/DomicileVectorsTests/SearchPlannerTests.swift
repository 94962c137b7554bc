import DomicileModel
import XCTest
@testable import DomicileVectors

final class SearchPlannerTests: XCTestCase {
    static let (data, queries) = SyntheticVectors.clustered(count: 6_050, dimension: 32, clusters: 30, seed: 5).split(at: 6_000)
    static let graph = IndexKind.hnsw(HNSWSettings(m: 8, efConstruction: 64, ef: 64))

    private func build(kind: IndexKind = graph, count: Int = data.count, planner: SearchPlanner = SearchPlanner(exactScanVectorsMax: 0),
                       eligibleUntil: (Int) -> Int64 = { _ in .max }) throws -> VectorIndex {
        let index = VectorIndex(dimension: Self.data.dimension, metric: .l2, kind: kind, planner: planner)
        for row in 0..<count { try index.upsert("v\(row)", vector: Self.data[row], eligibleUntil: eligibleUntil(row)) }
        return index
    }

    // MARK: The cost model

    func test_plan_scansWhenFewAreEligible_andWalksALargeIndexWhenMostAre() {
        let planner = SearchPlanner()
        for dimension in [50, 384] {
            XCTAssertEqual(planner.plan(slots: 1_000_000, live: 1_000_000, eligible: 1_000, dimension: dimension, ef: 64), .exact)
            XCTAssertEqual(planner.plan(slots: 1_000_000, live: 1_000_000, eligible: 900_000, dimension: dimension, ef: 64), .graph)
            XCTAssertEqual(planner.plan(slots: 1_000_000, live: 1_000_000, eligible: 0, dimension: dimension, ef: 64), .exact)
            // Small collections are scanned whatever is eligible.
            XCTAssertEqual(planner.plan(slots: 2_000, live: 2_000, eligible: 2_000, dimension: dimension, ef: 64), .exact)
        }
    }

    func test_plan_crossesOverOnce_andLaterForLargerIndexes() {
        let planner = SearchPlanner()
        func crossover(_ count: Int, _ dimension: Int) -> Int {
            // The smallest eligible count for which the walk is chosen; the
            // choice must not flip back as more become eligible.
            var first: Int?
            for eligible in stride(from: count / 1_000, through: count, by: count / 1_000) {
                let plan = planner.plan(slots: count, live: count, eligible: eligible, dimension: dimension, ef: 64)
                if plan == .graph, first == nil { first = eligible }
                if first != nil { XCTAssertEqual(plan, .graph, "\(count) × \(dimension), \(eligible) eligible") }
            }
            return first ?? count + 1
        }
        for dimension in [50, 384] {
            let small = Double(crossover(20_000, dimension)) / 20_000, large = Double(crossover(1_000_000, dimension)) / 1_000_000
            XCTAssertLessThan(large, small, "a larger index walks at a smaller eligible fraction (dimension \(dimension))")
        }
    }

    func test_plan_followsTheCostsItIsGiven() {
        var cheapWalk = SearchCosts()
        cheapWalk.walkPerEF = 0.001
        cheapWalk.walkPerEFPerDimension = 0
        XCTAssertEqual(SearchPlanner(costs: cheapWalk).plan(slots: 100_000, live: 100_000, eligible: 1_000, dimension: 64, ef: 64), .graph)
        var cheapScan = SearchCosts()
        cheapScan.scanSlot = 0
        cheapScan.scanVector = 0.001
        cheapScan.scanVectorPerDimension = 0
        XCTAssertEqual(SearchPlanner(costs: cheapScan).plan(slots: 100_000, live: 100_000, eligible: 90_000, dimension: 64, ef: 64), .exact)
    }

    // MARK: The planner on an index

    func test_choosePlan_walksWhenAllAreEligible_andScansWhenFewAre() throws {
        let all = try build()
        XCTAssertEqual(all.choosePlan(now: 0), .graph)
        let few = try build { row in row % 600 == 0 ? .max : 0 }
        XCTAssertEqual(few.choosePlan(now: 1), .exact)
        let hits = try few.search(Self.queries[0], k: 10, now: 1)
        XCTAssertEqual(hits.plan, .exact)
        XCTAssertEqual(Set(hits.hits.map(\.label)), Set((0..<10).map { "v\($0 * 600)" }))
        XCTAssertEqual(try build(kind: .flat).choosePlan(now: 0), .exact)
        XCTAssertEqual(try build(planner: SearchPlanner()).choosePlan(now: 0), .graph)
        XCTAssertEqual(try build(count: 2_000, planner: SearchPlanner()).choosePlan(now: 0), .exact, "at most 2 048 live: always scanned")
    }

    func test_choosePlan_seesDeadlinesPass() throws {
        // All eligible until 1 000 but ten forever: the estimate is taken at the search's time.
        let index = try build { row in row < 10 ? .max : 1_000 }
        XCTAssertEqual(index.storage.deadlines.eligibleBounds, 10...6_000)
        XCTAssertEqual(index.choosePlan(now: 999), .graph)
        XCTAssertEqual(index.choosePlan(now: 1_000), .exact)
        let result = try index.search(Self.queries[0], k: 20, now: 1_000)
        XCTAssertEqual(result.plan, .exact)
        XCTAssertEqual(Set(result.hits.map(\.label)), Set((0..<10).map { "v\($0)" }))
    }

    // MARK: The dense deadlines

    func test_deadlineBounds_followEveryWrite() throws {
        let index = try build(kind: .flat, count: 100) { row in row < 60 ? .max : 1_000 }
        XCTAssertEqual(index.storage.deadlines.eligibleBounds, 60...100)
        index.remove("v0")
        XCTAssertEqual(index.storage.deadlines.eligibleBounds, 59...99)
        index.setEligibleUntil("v1", 500)
        XCTAssertEqual(index.storage.deadlines.eligibleBounds, 58...99)
        try index.upsert("v70", vector: Self.data[70], eligibleUntil: .max)
        XCTAssertEqual(index.storage.deadlines.eligibleBounds, 59...99)
        try index.upsert("new", vector: Self.data[200], eligibleUntil: 2_000)
        XCTAssertEqual(index.storage.deadlines.eligibleBounds, 59...100)
        index.setEligibleUntil("absent", .max)
        XCTAssertEqual(index.storage.deadlines.eligibleBounds, 59...100)
    }

    func test_scan_seesMovedDeadlines_removalsAndReusedSlots() throws {
        for kind in [IndexKind.flat, Self.graph] {
            let index = try build(kind: kind, count: 100)
            let everything = { (now: Int64) in Set(try index.exactSearch(Self.data[0], k: 1_000, now: now).map(\.label)) }
            XCTAssertEqual(try everything(1).count, 100)
            // A deadline moved into the past, then forward again.
            index.setEligibleUntil("v3", 0)
            XCTAssertFalse(try everything(1).contains("v3"))
            XCTAssertEqual(try everything(1).count, 99)
            index.setEligibleUntil("v3", 10)
            XCTAssertTrue(try everything(9).contains("v3"))
            XCTAssertFalse(try everything(10).contains("v3"))
            index.setEligibleUntil("v3", .max)
            // A removed vector leaves its slot (the sixth filled) never eligible.
            index.remove("v5")
            XCTAssertEqual(index.storage.deadline(5), DeadlineChunks.never)
            XCTAssertFalse(try everything(1).contains("v5"))
            XCTAssertEqual(try everything(Int64.min + 1).count, 99)
            // Its slot is reused by the next insert, with that insert's deadline, not the old one.
            try index.upsert("reused", vector: Self.data[500], eligibleUntil: 0)
            XCTAssertFalse(try everything(1).contains("reused"))
            XCTAssertEqual(try everything(1).count, 99)
            index.setEligibleUntil("reused", .max)
            let hits = try index.exactSearch(Self.data[500], k: 1, now: 1)
            XCTAssertEqual(hits.first?.label, "reused")
            XCTAssertEqual(try everything(1).count, 100)
            XCTAssertEqual(index.storage.deadline(5), .max, "the removed slot was reused")
        }
    }

    func test_sampleEligible_estimatesTheFraction() {
        let deadlines = DeadlineChunks()
        for _ in 0..<4 { deadlines.append() }
        let slots = 4 * SlotStorage.chunkSlots
        for slot in 0..<slots { deadlines.set(UInt32(slot), slot % 10 == 0 ? .max : (slot % 10 == 1 ? 100 : 0)) }
        let (sampled, eligible) = deadlines.sampleEligible(below: slots, samples: 512, now: 50)
        XCTAssertEqual(sampled, 512)
        XCTAssertEqual(Double(eligible) / Double(sampled), 0.2, accuracy: 0.03)
        XCTAssertEqual(deadlines.sampleEligible(below: 5, samples: 512, now: 50).sampled, 5)
        XCTAssertEqual(deadlines.sampleEligible(below: 0, samples: 512, now: 50).sampled, 0)
        // Deadline 0 has passed, but only a time can tell: it counts among the deadlines until a time.
        let always = (0..<slots).filter { $0 % 10 == 0 }.count, untilTime = slots - always
        XCTAssertEqual(deadlines.eligibleBounds, always...(always + untilTime))
        var visited: [UInt32] = []
        deadlines.forEachEligible(below: slots, now: 100) { visited.append($0) }
        XCTAssertEqual(visited, stride(from: 0, to: slots, by: 10).map { UInt32($0) })
    }
}
