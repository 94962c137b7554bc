import DomicileModel
import DomicileNet
import DomicileVectors
import Foundation

/// `domicile bench load`: loading vectors through the API, one call per
/// item against the batch endpoints, on one node in the same run.
struct BenchLoadCommand: Command {
    static let path = ["bench", "load"]
    static let summary = "vectors/s through the API: single calls against the batch endpoints"
    static let help = """
        [--count 10000] [--dimension 384] [--batch 1000] [--dir DIR]

        On a one-region node (in-process, real sockets, WAL + synchronous=FULL, every write audited),
        a collection of --dimension (cosine, hnsw m 16, ef_construction 200), four figures of
        --count vectors each, in this order, same run:
          - vector writes, subjects registered and granted beforehand: PUT …/vectors/{pid} from 64
            concurrent clients, against POST …/vectors/batch (--batch per request, 4 clients);
          - a full load of new subjects (register, grant, write the vector): three single calls per
            subject from 64 clients, against POST /v1/subjects/batch, POST /v1/consents/batch and
            POST …/vectors/batch per --batch subjects from 4 clients.
        Each batch item is consent-checked, sealed, indexed and audited as its single call.
        Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let count = try arguments.integer("count", default: 10_000, range: 100...1_000_000)
        let dimension = try arguments.integer("dimension", default: 384, range: 2...4_096)
        let batchSize = try arguments.integer("batch", default: 1_000, range: 1...1_000)
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-load-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let bench = try await BenchNode.start(in: directory, limits: ["batch_items_max": batchSize, "batch_receipts_max": batchSize],
                                              requestTimeoutMilliseconds: 600_000)
        do {
            let load = Load(bench: bench, dimension: dimension,
                            vectors: SyntheticVectors.clustered(count: 4 * count, dimension: dimension, clusters: 100, seed: 3))
            Output.line("domicile bench load: 4 × \(count) vectors of \(dimension) (cosine, hnsw m 16, ef_construction 200), "
                        + "\(System.coreCount) cores, WAL + synchronous=FULL, audited")
            try await load.define()
            // Subjects for the vector-only figures, registered and granted untimed.
            let prepared = try await load.registerAndGrant(names: (0..<(2 * count)).map { "prepared-\($0)" }, batchSize: batchSize)
            let single = try await load.rate(count) { try await load.writeSingle(Array(prepared[0..<count]), rows: 0..<count) }
            let batched = try await load.rate(count) {
                try await load.writeBatches(Array(prepared[count..<(2 * count)]), rows: count..<(2 * count), batchSize: batchSize)
            }
            Output.line(String(format: "vector writes/s   PUT …/vectors/{pid} (64 clients)       %9.0f", single))
            Output.line(String(format: "vector writes/s   POST …/vectors/batch of %-4d (4 clients) %9.0f   ratio %.1f", batchSize, batched, batched / single))
            let fullSingle = try await load.rate(count) { try await load.fullSingle(first: 2 * count, count: count) }
            let fullBatched = try await load.rate(count) { try await load.fullBatches(first: 3 * count, count: count, batchSize: batchSize) }
            Output.line(String(format: "full load/s       register + grant + vector, single (64)   %9.0f", fullSingle))
            Output.line(String(format: "full load/s       the three batch endpoints (4 clients)     %9.0f   ratio %.1f", fullBatched, fullBatched / fullSingle))
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()
    }

    struct Load: Sendable {
        let bench: BenchNode
        let dimension: Int
        let vectors: SyntheticVectors

        var client: HTTPClient { bench.client }
        var address: SocketAddress { bench.address }

        func send(_ method: String, _ path: String, role: String, _ body: String, expect: Int) async throws -> HTTPClientResponse {
            let response = try await client.send(method, path, to: address, headers: bench.headers(role), body: Array(body.utf8))
            guard response.status == expect else { throw CLIError.failed("\(method) \(path): \(response.status) \(response.text.prefix(300))") }
            return response
        }

        func define() async throws {
            _ = try await send("PUT", "/v1/collections/load", role: "admin", """
                {"dimension":\(dimension),"metric":"cosine","purpose":"product_recs","index":{"kind":"hnsw","m":16,"ef_construction":200}}
                """, expect: 201)
        }

        func vectorJSON(_ row: Int) -> String { "[" + vectors[row].map { String($0) }.joined(separator: ",") + "]" }

        func subjectJSON(_ name: String) -> String { #"{"identifier":{"kind":"customer_id","value":"\#(name)"},"region":"eu"}"# }

        func grantJSON(_ pid: String) -> String {
            #"{"pid":"\#(pid)","action":"grant","purposes":["product_recs"],"source":"bench","collected_at":"2026-01-01T00:00:00Z"}"#
        }

        /// Calls per second of `count` items done by `body`.
        func rate(_ count: Int, _ body: () async throws -> Void) async throws -> Double {
            let start = Bench.monotonicSeconds()
            try await body()
            return Double(count) / (Bench.monotonicSeconds() - start)
        }

        func registerAndGrant(names: [String], batchSize: Int) async throws -> [String] {
            var pids: [String] = []
            for start in stride(from: 0, to: names.count, by: batchSize) {
                pids += try await registerAndGrantBatch(Array(names[start..<min(start + batchSize, names.count)]))
            }
            return pids
        }

        func registerAndGrantBatch(_ names: [String]) async throws -> [String] {
            let registered = try await send("POST", "/v1/subjects/batch", role: "ingest",
                                            #"{"subjects":[\#(names.map(subjectJSON).joined(separator: ","))]}"#, expect: 200)
            guard let object = try JSONSerialization.jsonObject(with: Data(registered.body)) as? [String: Any],
                  let results = object["results"] as? [[String: Any]] else { throw CLIError.failed("registration batch: no results") }
            let pids = results.compactMap { $0["pid"] as? String }
            guard pids.count == names.count else { throw CLIError.failed("registration batch: \(names.count - pids.count) refused") }
            _ = try await send("POST", "/v1/consents/batch", role: "ingest", #"{"receipts":[\#(pids.map(grantJSON).joined(separator: ","))]}"#,
                               expect: 201)
            return pids
        }

        func writeSingle(_ pids: [String], rows: Range<Int>) async throws {
            try await parallel(clients: 64, count: pids.count) { index in
                _ = try await send("PUT", "/v1/collections/load/vectors/\(pids[index])", role: "ingest",
                                   #"{"vector":\#(vectorJSON(rows.lowerBound + index))}"#, expect: 200)
            }
        }

        func writeBatch(_ pids: [String], rows: Range<Int>) async throws {
            let entries = zip(pids, rows).map { #"{"pid":"\#($0)","vector":\#(vectorJSON($1))}"# }
            let response = try await send("POST", "/v1/collections/load/vectors/batch", role: "ingest",
                                          #"{"vectors":[\#(entries.joined(separator: ","))]}"#, expect: 200)
            guard response.text.contains(#""failed":0"#) else { throw CLIError.failed("vector batch: refused items") }
        }

        func writeBatches(_ pids: [String], rows: Range<Int>, batchSize: Int) async throws {
            let batches = stride(from: 0, to: pids.count, by: batchSize).map { $0..<min($0 + batchSize, pids.count) }
            try await parallel(clients: 4, count: batches.count) { index in
                let range = batches[index]
                try await writeBatch(Array(pids[range]), rows: (rows.lowerBound + range.lowerBound)..<(rows.lowerBound + range.upperBound))
            }
        }

        func fullSingle(first: Int, count: Int) async throws {
            try await parallel(clients: 64, count: count) { index in
                let row = first + index
                let registered = try await send("POST", "/v1/subjects", role: "ingest", subjectJSON("full-\(row)"), expect: 201)
                guard let object = try JSONSerialization.jsonObject(with: Data(registered.body)) as? [String: Any],
                      let pid = object["pid"] as? String else { throw CLIError.failed("registration: no pid") }
                _ = try await send("POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                                   #"{"action":"grant","purposes":["product_recs"],"source":"bench","collected_at":"2026-01-01T00:00:00Z"}"#,
                                   expect: 201)
                _ = try await send("PUT", "/v1/collections/load/vectors/\(pid)", role: "ingest", #"{"vector":\#(vectorJSON(row))}"#, expect: 200)
            }
        }

        func fullBatches(first: Int, count: Int, batchSize: Int) async throws {
            let batches = stride(from: 0, to: count, by: batchSize).map { (first + $0)..<(first + min($0 + batchSize, count)) }
            try await parallel(clients: 4, count: batches.count) { index in
                let rows = batches[index]
                let pids = try await registerAndGrantBatch(rows.map { "full-\($0)" })
                try await writeBatch(pids, rows: rows)
            }
        }

        /// Items 0..<count, taken in turn by `clients` concurrent workers.
        func parallel(clients: Int, count: Int, _ item: @escaping @Sendable (Int) async throws -> Void) async throws {
            let next = Locked(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<min(clients, count) {
                    group.addTask {
                        while true {
                            let index = next.withLock { value -> Int in
                                defer { value += 1 }
                                return value
                            }
                            guard index < count else { return }
                            try await item(index)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }
}
