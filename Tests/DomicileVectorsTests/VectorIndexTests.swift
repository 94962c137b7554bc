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

/// `upsertAll`: the batch load a restart uses, linked on several threads.
final class VectorIndexBatchTests: XCTestCase {
    static var data: SyntheticVectors { VectorIndexTests.data }
    static var queries: SyntheticVectors { VectorIndexTests.queries }
    static let graph = IndexKind.hnsw(HNSWSettings(m: 12, efConstruction: 100, ef: 64))

    private func items(_ rows: Range<Int>, prefix: String = "v") -> [VectorItem] {
        rows.map { VectorItem(label: "\(prefix)\($0)", vector: Self.data[$0], eligibleUntil: .max) }
    }

    private func empty() -> VectorIndex {
        VectorIndex(dimension: Self.data.dimension, metric: .l2, kind: Self.graph,
                    planner: .walkAlways)
    }

    private func recall(_ index: VectorIndex) throws -> Double {
        var hits = 0
        for row in 0..<Self.queries.count {
            let truth = Set(try index.exactSearch(Self.queries[row], k: 10, now: 0).map(\.label))
            hits += try index.graphSearch(Self.queries[row], k: 10, ef: 32, now: 0).filter { truth.contains($0.label) }.count
        }
        return Double(hits) / Double(Self.queries.count * 10)
    }

    func test_upsertAll_onOneThread_buildsTheGraphThatUpsertsInOrderBuild() throws {
        let serial = empty(), batch = empty()
        for item in items(0..<3_000) { try serial.upsert(item.label, vector: item.vector, eligibleUntil: item.eligibleUntil) }
        try batch.upsertAll(items(0..<3_000), threads: 1)
        for row in 0..<Self.queries.count {
            XCTAssertEqual(try serial.graphSearch(Self.queries[row], k: 10, ef: 16, now: 0),
                           try batch.graphSearch(Self.queries[row], k: 10, ef: 16, now: 0))
        }
    }

    /// A parallel build (four threads, so they interleave even on one core)
    /// into a graph that already holds vectors, while other threads search:
    /// every vector ends up present, and the graph finds neighbours as well
    /// as the serial one does.
    func test_parallelBuild_recallMatchesTheSerialBuild_whileSearchesRun() throws {
        let serial = empty()
        for item in items(0..<6_000) { try serial.upsert(item.label, vector: item.vector, eligibleUntil: item.eligibleUntil) }
        let parallel = empty()
        try parallel.upsertAll(items(0..<500), threads: 4)
        let done = Atomic<Bool>(false), searches = Atomic<Int>(0), strangers = Atomic<Int>(0)
        let group = DispatchGroup()
        for thread in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                var row = thread
                while !done.load(ordering: .acquiring) {
                    let hits = (try? parallel.graphSearch(Self.queries[row % Self.queries.count], k: 10, ef: 32, now: 0)) ?? []
                    if hits.contains(where: { !$0.label.hasPrefix("v") }) || Set(hits.map(\.label)).count != hits.count {
                        strangers.add(1, ordering: .relaxed)
                    }
                    searches.add(1, ordering: .relaxed)
                    row += 2
                }
                group.leave()
            }
        }
        try parallel.upsertAll(items(500..<6_000), threads: 4)
        done.store(true, ordering: .releasing)
        group.wait()
        XCTAssertEqual(strangers.load(ordering: .relaxed), 0, "a search returned an unknown or repeated label")
        XCTAssertGreaterThan(searches.load(ordering: .relaxed), 0)
        XCTAssertEqual(parallel.count, 6_000)
        for row in stride(from: 0, to: 6_000, by: 97) { XCTAssertTrue(parallel.contains("v\(row)")) }
        let serialRecall = try recall(serial), parallelRecall = try recall(parallel)
        XCTAssertGreaterThanOrEqual(parallelRecall, serialRecall - 0.02, "parallel build recall against the serial build's")
        XCTAssertGreaterThanOrEqual(parallelRecall, 0.93)
    }

    func test_upsertAll_replacesPresentAndRepeatedLabels_withTheLastVector() throws {
        let index = empty()
        try index.upsertAll(items(0..<1_000), threads: 2)
        var batch = items(1_000..<2_000)
        batch.append(VectorItem(label: "v5", vector: Self.data[2_001], eligibleUntil: .max))       // present before
        batch.append(VectorItem(label: "v1500", vector: Self.data[2_002], eligibleUntil: .max))    // earlier in the batch
        try index.upsertAll(batch, threads: 2)
        XCTAssertEqual(index.count, 2_000)
        XCTAssertEqual(index.vector(of: "v5"), Self.data[2_001])
        XCTAssertEqual(index.vector(of: "v1500"), Self.data[2_002])
        XCTAssertEqual(try index.graphSearch(Self.data[2_002], k: 1, ef: 32, now: 0).first?.label, "v1500")
    }

    /// A batch linked in the background: the writes asked for after it
    /// returned (a removal, a replacement, a snapshot) wait for its links and
    /// apply after them, and a deadline moved meanwhile is kept when its
    /// label is published; so the index ends as if the batch had been
    /// linked before they were asked, round after round.
    func test_linkingInBackground_laterWritesApplyAfterTheLinks() async throws {
        let index = empty()
        try index.upsertAll(items(0..<500), threads: 2)
        for round in 0..<8 {
            let rows = (500 + round * 150)..<(650 + round * 150)
            let ticket = try index.upsertAllLinkingInBackground(items(rows), threads: 2)
            XCTAssertFalse(ticket === LinkTicket.done, "new labels on two threads are linked in the background")
            let revoked = "v\(rows.lowerBound)", removed = "v\(rows.lowerBound + 1)", replaced = "v\(rows.lowerBound + 2)"
            index.setEligibleUntil(revoked, 0)
            XCTAssertTrue(index.remove(removed), "the removal waited for the link, which published the label")
            try index.upsert(replaced, vector: Self.data[5_000 + round], eligibleUntil: .max)
            let saved = try XCTUnwrap(index.snapshotGraph(position: UInt64(round)))
            await ticket.linked()

            XCTAssertFalse(index.isEligible(revoked, now: 1))
            XCTAssertFalse(index.contains(removed))
            XCTAssertEqual(index.vector(of: replaced), Self.data[5_000 + round])
            XCTAssertEqual(index.count, rows.upperBound - (round + 1), "one removed per round")
            for row in rows.dropFirst(3) {
                XCTAssertEqual(try index.graphSearch(Self.data[row], k: 1, ef: 64, now: 0).first?.label, "v\(row)")
            }
            // The snapshot, taken after the batch and the three writes, holds all of them.
            let restore = try VectorIndex.restoring(saved, dimension: Self.data.dimension, metric: .l2, kind: Self.graph)
            XCTAssertEqual(restore.position, UInt64(round))
            XCTAssertEqual(restore.index.count, index.count)
            XCTAssertFalse(restore.index.contains(removed))
        }
    }

    /// A batch that replaces a present label, or for one thread, is done when the call returns.
    func test_linkingInBackground_replacementsAndOneThread_areDoneOnReturn() async throws {
        let index = empty()
        try index.upsertAll(items(0..<300), threads: 2)
        let replacing = try index.upsertAllLinkingInBackground(items(300..<400) + [VectorItem(label: "v7", vector: Self.data[4_000], eligibleUntil: .max)],
                                                               threads: 2)
        XCTAssertTrue(replacing === LinkTicket.done)
        XCTAssertEqual(index.vector(of: "v7"), Self.data[4_000])
        XCTAssertEqual(index.count, 400)
        let single = try index.upsertAllLinkingInBackground(items(400..<500), threads: 1)
        XCTAssertTrue(single === LinkTicket.done)
        XCTAssertEqual(index.count, 500)
        await single.linked()
    }

    func test_upsertAll_refusesABadVector_andChangesNothing() throws {
        let index = empty()
        var batch = items(0..<100)
        batch.append(VectorItem(label: "bad", vector: [1, 2, 3], eligibleUntil: .max))
        XCTAssertThrowsError(try index.upsertAll(batch, threads: 2)) { XCTAssertEqual($0 as? VectorError, .wrongDimension(expected: 48, got: 3)) }
        XCTAssertEqual(index.count, 0)
        XCTAssertEqual(try index.search(Self.queries[0], k: 5, now: 0).hits, [])
    }
}

/// The lock-free read of neighbour lists (a sequence lock) against a writer
/// rewriting them, levels included.
final class SlotStorageTests: XCTestCase {
    /// The writer writes lists whose every entry is one value v, v % capacity
    /// + 1 entries long, and gives the slot 1 to 3 levels; a reader must never
    /// see a list mixing two writes (a torn read kept would).
    func test_readNeighbours_neverReturnsATornList() throws {
        let storage = SlotStorage(dimension: 8, level0Max: 24, upperMax: 12)
        try storage.ensure(3)
        let done = Atomic<Bool>(false), torn = Atomic<Int>(0), reads = Atomic<Int>(0)
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                let buffer = UnsafeMutablePointer<UInt32>.allocate(capacity: 24)
                defer { buffer.deallocate() }
                while !done.load(ordering: .acquiring) {
                    for level in 0...2 {
                        let count = storage.readNeighbours(1, level: level, into: buffer)
                        guard count > 0 else { continue }
                        let value = buffer[0]
                        let capacity = level == 0 ? 24 : 12
                        if Int(value) % capacity + 1 != count || (0..<count).contains(where: { buffer[$0] != value }) {
                            torn.add(1, ordering: .relaxed)
                        }
                    }
                    reads.add(1, ordering: .relaxed)
                }
                group.leave()
            }
        }
        // Writes go on until the readers have read many times meanwhile.
        var value: UInt32 = 0
        while value < 2_000_000 || reads.load(ordering: .relaxed) < 200_000 {
            value &+= 1
            if value % 100 == 0 { storage.resetLinks(1, level: Int(value / 100) % 3 + 1) }
            let level = Int(value) % (storage.level(1) + 1)
            let capacity = level == 0 ? 24 : 12
            storage.setNeighbours(1, level: level, Array(repeating: value, count: Int(value) % capacity + 1))
        }
        done.store(true, ordering: .releasing)
        group.wait()
        XCTAssertEqual(torn.load(ordering: .relaxed), 0, "a torn neighbour list was read")
        XCTAssertGreaterThan(reads.load(ordering: .relaxed), 0)
    }
}
