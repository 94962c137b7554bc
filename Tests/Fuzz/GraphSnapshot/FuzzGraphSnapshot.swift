import DomicileFuzzSupport
import DomicileVectors

// Fuzzes the decoders of a saved vector graph (Tests/Fuzz/run graphsnapshot):
// any bytes are read as a graph snapshot file's framing and as the graph
// itself (what a sealed file opens to), for a small and a larger shape. Each
// is refused with a `GraphSnapshotError` or decodes to a consistent graph that
// a search, a removal and an insert then run on; never a trap.
@main
enum FuzzGraphSnapshot {
    static func main() throws {
        try FuzzDriver.main(name: "graph snapshot", entry: fuzzGraphSnapshot) { check($0) }
    }

    static let shapes: [(dimension: Int, metric: Metric, kind: IndexKind)] = [
        (2, .l2, .hnsw(HNSWSettings(m: 2, efConstruction: 2))),
        (4, .cosine, .hnsw(HNSWSettings(m: 4, efConstruction: 8))),
        (2, .dot, .flat),
    ]

    static func check(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        if let chunks = try? GraphSnapshotFile.sealedChunks(of: bytes) {
            precondition(!chunks.isEmpty && chunks.reduce(0) { $0 + $1.count } <= bytes.count, "chunks come from the file's bytes")
        }
        for shape in shapes {
            guard let restore = try? VectorIndex.restoring(bytes, dimension: shape.dimension, metric: shape.metric, kind: shape.kind) else {
                continue
            }
            let labels = (0..<16).map { "l\($0)" }
            for label in labels { _ = try? restore.place(label, vector: [Float](repeating: 0.5, count: shape.dimension), eligibleUntil: .max) }
            restore.finish()
            let index = restore.index
            let query = [Float](repeating: 0.25, count: shape.dimension)
            guard let hits = try? index.search(query, k: 4, now: 0).hits else { preconditionFailure("a restored index searches") }
            precondition(hits.count <= min(4, index.count), "no more hits than vectors")
            try? index.upsert("new", vector: query, eligibleUntil: .max)
            precondition(index.contains("new"), "a restored index takes inserts")
            precondition(index.snapshotGraph(position: restore.position) != nil, "a restored index saves again")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzGraphSnapshot(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzGraphSnapshot.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
