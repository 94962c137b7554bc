import DomicileModel
import XCTest
@testable import DomicileVectors

/// Saving a graph and restoring it (GraphSnapshot.swift): the restored index,
/// given its vectors back and the same later writes in the same order,
/// answers exactly as the index that was never saved; a damaged or foreign
/// graph is refused with a typed error, never a trap.
final class GraphSnapshotTests: XCTestCase {
    static let (data, queries) = SyntheticVectors.clustered(count: 3_060, dimension: 32, clusters: 30, seed: 5).split(at: 3_000)
    static let settings = HNSWSettings(m: 8, efConstruction: 64, ef: 48)
    static let kind = IndexKind.hnsw(settings)

    private func index(_ metric: Metric = .l2) -> VectorIndex {
        VectorIndex(dimension: Self.data.dimension, metric: metric, kind: Self.kind,
                    planner: .walkAlways)
    }

    /// The vectors as a store would hold them: label → (vector, write order).
    private struct Store {
        var rows: [String: (vector: [Float], seq: Int)] = [:]
        var seq = 0
        mutating func write(_ label: String, _ vector: [Float]) {
            seq += 1
            rows[label] = (vector, seq)
        }
    }

    private func restore(_ graph: [UInt8], from store: Store, metric: Metric = .l2) throws -> VectorIndex {
        let restore = try VectorIndex.restoring(graph, dimension: Self.data.dimension, metric: metric, kind: Self.kind,
                                                planner: .walkAlways)
        let saved = Int(restore.position)
        let ordered = store.rows.sorted { $0.value.seq < $1.value.seq }
        for (label, row) in ordered where row.seq <= saved {
            XCTAssertTrue(try restore.place(label, vector: row.vector, eligibleUntil: .max))
        }
        restore.finish()
        for (label, row) in ordered where row.seq > saved { try restore.index.upsert(label, vector: row.vector, eligibleUntil: .max) }
        return restore.index
    }

    private func assertSameAnswers(_ a: VectorIndex, _ b: VectorIndex, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for row in 0..<Self.queries.count {
            let query = Self.queries[row]
            XCTAssertEqual(try a.graphSearch(query, k: 10, ef: 48, now: 0), try b.graphSearch(query, k: 10, ef: 48, now: 0), file: file, line: line)
            XCTAssertEqual(try a.exactSearch(query, k: 10, now: 0), try b.exactSearch(query, k: 10, now: 0), file: file, line: line)
        }
    }

    /// Save after writes and removals; then remove (in slot order, which is
    /// how removals after a save are replayed), rewrite and insert more; drop the index; restore the saved graph, put the
    /// store's vectors back and replay what came after: the same graph as
    /// the index that never restarted — the same answers to every graph
    /// search, and the same exact answers as a fresh build.
    func test_restoredGraph_plusLaterWrites_answersAsTheIndexThatNeverRestarted() throws {
        for metric in [Metric.l2, .cosine] {
            let live = index(metric)
            var store = Store()
            func write(_ row: Int) throws {
                store.write("v\(row)", Self.data[row])
                try live.upsert("v\(row)", vector: Self.data[row], eligibleUntil: .max)
            }
            func delete(_ row: Int) {
                store.rows["v\(row)"] = nil
                XCTAssertTrue(live.remove("v\(row)"))
            }
            for row in 0..<2_000 { try write(row) }
            // Removals and reused slots before the save: the graph keeps its free list.
            for row in stride(from: 0, to: 600, by: 7) { delete(row) }
            for row in 2_000..<2_050 { try write(row) }
            let graph = try XCTUnwrap(live.snapshotGraph(position: UInt64(store.seq)))

            // After the save: removals in slot order, the last one by a
            // rewrite (its old slot retired, its new vector inserted), then new vectors.
            for row in [3, 10, 800] { delete(row) }
            store.write("v1500", Self.data[2_999])
            try live.upsert("v1500", vector: Self.data[2_999], eligibleUntil: .max)
            for row in 2_050..<2_400 { try write(row) }

            let restored = try restore(graph, from: store, metric: metric)
            try assertSameAnswers(live, restored)

            let fresh = index(metric)
            for (label, row) in store.rows.sorted(by: { $0.value.seq < $1.value.seq }) {
                try fresh.upsert(label, vector: row.vector, eligibleUntil: .max)
            }
            for row in 0..<Self.queries.count {
                XCTAssertEqual(try restored.exactSearch(Self.queries[row], k: 10, now: 0), try fresh.exactSearch(Self.queries[row], k: 10, now: 0))
            }
            // The level draw and free list came back too: the same next inserts give the same graph.
            for row in 2_400..<2_600 {
                try live.upsert("v\(row)", vector: Self.data[row], eligibleUntil: .max)
                try restored.upsert("v\(row)", vector: Self.data[row], eligibleUntil: .max)
            }
            try assertSameAnswers(live, restored)
            XCTAssertEqual(live.snapshotGraph(position: 1), restored.snapshotGraph(position: 1), "byte for byte the same graph")
        }
    }

    /// Removals interleaved with inserts after the save cannot be replayed in
    /// their order (the store keeps no trace of a removal): the restored
    /// index then holds exactly the store's vectors, answers exact searches
    /// as a fresh build does, and its graph searches keep their recall.
    func test_interleavedRemovalsAfterTheSave_giveTheStoresVectors_andRecallHolds() throws {
        let live = index()
        var store = Store()
        for row in 0..<2_000 {
            store.write("v\(row)", Self.data[row])
            try live.upsert("v\(row)", vector: Self.data[row], eligibleUntil: .max)
        }
        let graph = try XCTUnwrap(live.snapshotGraph(position: UInt64(store.seq)))
        for row in 2_000..<2_500 {
            store.write("v\(row)", Self.data[row])
            store.rows["v\(row - 1_900)"] = nil
        }
        let restored = try restore(graph, from: store)
        XCTAssertEqual(restored.count, store.rows.count)
        var found = 0.0
        for row in 0..<Self.queries.count {
            let exact = try restored.exactSearch(Self.queries[row], k: 10, now: 0)
            XCTAssertTrue(exact.allSatisfy { store.rows[$0.label] != nil })
            found += Double(Set(try restored.graphSearch(Self.queries[row], k: 10, ef: 48, now: 0).map(\.label))
                .intersection(exact.map(\.label)).count) / 10
        }
        XCTAssertGreaterThan(found / Double(Self.queries.count), 0.9)
    }

    func test_emptyIndex_roundTrips() throws {
        let graph = try XCTUnwrap(index().snapshotGraph(position: 0))
        let restore = try VectorIndex.restoring(graph, dimension: Self.data.dimension, metric: .l2, kind: Self.kind)
        XCTAssertEqual(restore.finish(), 0)
        XCTAssertEqual(restore.index.count, 0)
        try restore.index.upsert("a", vector: Self.data[0], eligibleUntil: .max)
        XCTAssertEqual(try restore.index.search(Self.data[0], k: 1, now: 0).hits.map(\.label), ["a"])
    }

    func test_anotherShape_isRefused() throws {
        let live = index()
        for row in 0..<50 { try live.upsert("v\(row)", vector: Self.data[row], eligibleUntil: .max) }
        let graph = try XCTUnwrap(live.snapshotGraph(position: 50))
        func refusal(_ dimension: Int, _ metric: Metric, _ kind: IndexKind) -> GraphSnapshotError? {
            do { _ = try VectorIndex.restoring(graph, dimension: dimension, metric: metric, kind: kind) } catch { return error }
            return nil
        }
        XCTAssertEqual(refusal(16, .l2, Self.kind), .shapeMismatch("dimension"))
        XCTAssertEqual(refusal(Self.data.dimension, .dot, Self.kind), .shapeMismatch("metric"))
        XCTAssertEqual(refusal(Self.data.dimension, .l2, .flat), .shapeMismatch("index kind"))
        XCTAssertEqual(refusal(Self.data.dimension, .l2, .hnsw(HNSWSettings(m: 9, efConstruction: 64))), .shapeMismatch("m or ef_construction"))
        XCTAssertEqual(refusal(Self.data.dimension, .l2, .hnsw(HNSWSettings(m: 8, efConstruction: 65))), .shapeMismatch("m or ef_construction"))
        XCTAssertNil(refusal(Self.data.dimension, .l2, .hnsw(HNSWSettings(m: 8, efConstruction: 64, ef: 7))), "ef may differ")
    }

    /// Every truncation and every single-byte change of a saved graph is
    /// either refused with a typed error or decodes to a consistent graph
    /// (a changed neighbour or generation is still a graph); none traps.
    func test_truncatedOrAlteredBytes_areRefusedOrConsistent_neverATrap() throws {
        let live = index()
        for row in 0..<40 { try live.upsert("v\(row)", vector: Self.data[row], eligibleUntil: .max) }
        for row in 0..<10 { live.remove("v\(row * 3)") }
        let graph = try XCTUnwrap(live.snapshotGraph(position: 40))
        for length in 0..<graph.count {
            XCTAssertThrowsError(try VectorIndex.restoring(Array(graph[..<length]), dimension: Self.data.dimension, metric: .l2, kind: Self.kind))
        }
        XCTAssertThrowsError(try VectorIndex.restoring(graph + [0], dimension: Self.data.dimension, metric: .l2, kind: Self.kind)) {
            XCTAssertEqual($0 as? GraphSnapshotError, .trailingBytes)
        }
        var random = SeededRandom(seed: 3)
        for _ in 0..<2_000 {
            var altered = graph
            let offset = Int(random.next() % UInt64(graph.count))
            altered[offset] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            guard let restore = try? VectorIndex.restoring(altered, dimension: Self.data.dimension, metric: .l2, kind: Self.kind) else { continue }
            restore.finish()
            _ = try restore.index.search(Self.queries[0], k: 5, now: 0)
        }
    }

    func test_fileFraming_cutsAndParsesChunks_andRefusesDamage() throws {
        let plaintext = (0..<(GraphSnapshotFile.chunkBytesMax + 10)).map { UInt8(truncatingIfNeeded: $0) }
        let chunks = GraphSnapshotFile.chunks(of: plaintext)
        XCTAssertEqual(chunks.map(\.count), [GraphSnapshotFile.chunkBytesMax, 10])
        XCTAssertEqual(GraphSnapshotFile.chunks(of: []).count, 1)
        let file = GraphSnapshotFile.frame([[1, 2, 3], [], [4]])
        XCTAssertEqual(try GraphSnapshotFile.sealedChunks(of: file), [[1, 2, 3], [], [4]])
        for length in 0..<file.count { XCTAssertThrowsError(try GraphSnapshotFile.sealedChunks(of: Array(file[..<length]))) }
        XCTAssertThrowsError(try GraphSnapshotFile.sealedChunks(of: file + [0]))
        var foreign = file
        foreign[0] = UInt8(ascii: "X")
        XCTAssertThrowsError(try GraphSnapshotFile.sealedChunks(of: foreign))
        // A chunk count beyond the bytes is refused before anything is allocated.
        XCTAssertEqual(try? GraphSnapshotFile.sealedChunks(of: Array("DMGS".utf8) + [1, 0, 0, 255, 255]), nil)
    }
}
