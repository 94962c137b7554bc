import DomicileModel
import DomicileNet
import DomicileStorage
import DomicileVectors
import Foundation

/// `domicile bench load`: loading vectors through the API, one call per
/// item against the batch endpoints, on one node in the same run.
struct BenchLoadCommand: Command {
    static let path = ["bench", "load"]
    static let summary = "vectors/s through the API: single calls against the batch endpoints"
    static let help = """
        [--count 10000] [--dimension 384] [--batch 1000] [--clients 4] [--index hnsw|flat] [--full-only] [--dir DIR]

        On a one-region node (in-process, real sockets, WAL + synchronous=FULL, every write audited),
        a collection of --dimension (cosine; --index hnsw: m 16, ef_construction 200, or flat, which
        shows the API's own cost without the graph's inserts), in this order, same run:
          - vector writes, subjects registered and granted beforehand, --count / 2 vectors each:
            PUT …/vectors/{pid} from 64 concurrent clients, against POST …/vectors/batch (--batch per
            request, --clients); then the same from one client calling one request at a time;
          - a full load of --count new subjects (register, grant, write the vector): three single calls per
            subject from 64 clients, against POST /v1/subjects/batch, POST /v1/consents/batch and
            POST …/vectors/batch per --batch subjects from --clients clients.
        Each batch item is consent-checked, sealed, indexed and audited as its single call. The
        vectors are rendered as JSON before the clock starts; the clients run in the node's process.
        Same run, two references: the same rows (subject, consent, vector) written by plain INSERTs
        into SQLite (WAL + synchronous=FULL, a transaction per --batch, no HTTP, sealing, audit or
        graph); and a batch body of --batch vectors read by Foundation's JSONDecoder against the
        node's fast reader (VectorJSON). --full-only: only the plain INSERTs and the full loads, the
        batch load first, into a node holding nothing yet (as a first load). Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let count = try arguments.integer("count", default: 10_000, range: 100...1_000_000)
        let dimension = try arguments.integer("dimension", default: 384, range: 2...4_096)
        let batchSize = try arguments.integer("batch", default: 1_000, range: 1...1_000)
        let batchClients = try arguments.integer("clients", default: 4, range: 1...64)
        let index = try arguments.option("index") ?? "hnsw"
        guard ["hnsw", "flat"].contains(index) else { throw CLIError.usage("--index: hnsw or flat") }
        let fullOnly = arguments.flag("full-only")
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-load-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let bench = try await BenchNode.start(in: directory, limits: ["batch_items_max": batchSize, "batch_receipts_max": batchSize],
                                              requestTimeoutMilliseconds: 600_000)
        do {
            // Every vector rendered as JSON before any figure: the client's formatting is not timed.
            let vectors = SyntheticVectors.clustered(count: 4 * count, dimension: dimension, clusters: 100, seed: 3)
            let load = Load(bench: bench, dimension: dimension, index: index, batchClients: batchClients,
                            vectorJSON: (0..<vectors.count).map { "[" + vectors[$0].map { String($0) }.joined(separator: ",") + "]" })
            Output.line("domicile bench load: --count \(count), dimension \(dimension) (cosine, "
                        + (index == "hnsw" ? "hnsw m 16, ef_construction 200" : "flat") + "), "
                        + "\(System.coreCount) cores, WAL + synchronous=FULL, audited")
            // Each figure writes to a collection of its own, so each starts from an empty graph.
            for name in ["concurrent_single", "concurrent_batch", "sequential_single", "sequential_batch", "full_single", "full_batch"] {
                try await load.define(name)
            }
            if fullOnly {
                // The batch load first, into a node holding nothing yet (as a first load would).
                let insert = try load.plainInserts(of: vectors, count: count, batchSize: batchSize, rows: (3 * count)..<(4 * count),
                                                   path: directory + "/plain.sqlite")
                Output.line(String(format: "reference         plain INSERTs into SQLite, same rows         %9.0f", insert))
                let fullBatched = try await load.rate(count) { try await load.fullBatches(first: 3 * count, count: count, batchSize: batchSize,
                                                                                             into: "full_batch") }
                Output.line(String(format: "full load/s       the three batch endpoints (%2d clients)    %9.0f   against plain INSERTs %.3f",
                                   batchClients, fullBatched, fullBatched / insert))
                let fullSingle = try await load.rate(count) { try await load.fullSingle(first: 2 * count, count: count, into: "full_single") }
                Output.line(String(format: "full load/s       register + grant + vector, single (64)   %9.0f   (after the batch load)", fullSingle))
                await bench.stop()
                return
            }
            // Subjects for the vector-only figures, registered and granted untimed.
            let prepared = try await load.registerAndGrant(names: (0..<(2 * count)).map { "prepared-\($0)" }, batchSize: batchSize)
            let half = count / 2
            let single = try await load.rate(half) { try await load.writeSingle(Array(prepared[0..<half]), rows: 0..<half, clients: 64, into: "concurrent_single") }
            let batched = try await load.rate(half) {
                try await load.writeBatches(Array(prepared[half..<count]), rows: half..<count, batchSize: batchSize, clients: batchClients,
                                            into: "concurrent_batch")
            }
            Output.line(String(format: "vector writes/s   PUT …/vectors/{pid} (64 clients)            %9.0f", single))
            Output.line(String(format: "vector writes/s   POST …/vectors/batch of %-4d (%2d clients)     %9.0f   ratio %.1f", batchSize, batchClients, batched,
                               batched / single))
            // One client, one call at a time: what batching saves a sequential loader.
            let sequential = try await load.rate(half) {
                try await load.writeSingle(Array(prepared[count..<(count + half)]), rows: count..<(count + half), clients: 1,
                                           into: "sequential_single")
            }
            let sequentialBatched = try await load.rate(half) {
                try await load.writeBatches(Array(prepared[(count + half)..<(2 * count)]), rows: (count + half)..<(2 * count), batchSize: batchSize,
                                            clients: 1, into: "sequential_batch")
            }
            Output.line(String(format: "vector writes/s   PUT …/vectors/{pid} (1 client)              %9.0f", sequential))
            Output.line(String(format: "vector writes/s   POST …/vectors/batch of %-4d (1 client)       %9.0f   ratio %.1f", batchSize, sequentialBatched,
                               sequentialBatched / sequential))
            let insert = try load.plainInserts(of: vectors, count: count, batchSize: batchSize, rows: (3 * count)..<(4 * count),
                                               path: directory + "/plain.sqlite")
            let decoding = try load.decodingRates(batchSize: batchSize)
            Output.line(String(format: "reference         plain INSERTs into SQLite, same rows         %9.0f", insert))
            Output.line(String(format: "batch bodies/s    JSONDecoder %.1f, VectorJSON %.1f (%d vectors each)   ratio %.1f",
                               decoding.foundation, decoding.fast, batchSize, decoding.fast / decoding.foundation))
            let fullSingle = try await load.rate(count) { try await load.fullSingle(first: 2 * count, count: count, into: "full_single") }
            let fullBatched = try await load.rate(count) { try await load.fullBatches(first: 3 * count, count: count, batchSize: batchSize,
                                                                                         into: "full_batch") }
            Output.line(String(format: "full load/s       register + grant + vector, single (64)   %9.0f", fullSingle))
            Output.line(String(format: "full load/s       the three batch endpoints (%2d clients)    %9.0f   ratio %.1f", batchClients, fullBatched, fullBatched / fullSingle))
            Output.line(String(format: "full load, batches, against plain INSERTs of the same rows               ratio %.2f", fullBatched / insert))
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()
    }

    struct Load: Sendable {
        let bench: BenchNode
        let dimension: Int
        let index: String
        /// Concurrent clients of the batch figures.
        let batchClients: Int
        let vectorJSON: [String]

        var client: HTTPClient { bench.client }
        var address: SocketAddress { bench.address }

        func send(_ method: String, _ path: String, role: String, _ body: String, expect: Int) async throws -> HTTPClientResponse {
            let response = try await client.send(method, path, to: address, headers: bench.headers(role), body: Array(body.utf8))
            guard response.status == expect else { throw CLIError.failed("\(method) \(path): \(response.status) \(response.text.prefix(300))") }
            return response
        }

        func define(_ collection: String) async throws {
            _ = try await send("PUT", "/v1/collections/\(collection)", role: "admin", """
                {"dimension":\(dimension),"metric":"cosine","purpose":"product_recs","index":\(index == "hnsw" ? #"{"kind":"hnsw","m":16,"ef_construction":200}"# : #"{"kind":"flat"}"#)}
                """, expect: 201)
        }

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

        func rate(_ count: Int, _ body: () throws -> Void) throws -> Double {
            let start = Bench.monotonicSeconds()
            try body()
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

        func writeSingle(_ pids: [String], rows: Range<Int>, clients: Int, into collection: String) async throws {
            try await parallel(clients: clients, count: pids.count) { index in
                _ = try await send("PUT", "/v1/collections/\(collection)/vectors/\(pids[index])", role: "ingest",
                                   #"{"vector":\#(vectorJSON[rows.lowerBound + index])}"#, expect: 200)
            }
        }

        func writeBatch(_ pids: [String], rows: Range<Int>, into collection: String) async throws {
            let entries = zip(pids, rows).map { #"{"pid":"\#($0)","vector":\#(vectorJSON[$1])}"# }
            let response = try await send("POST", "/v1/collections/\(collection)/vectors/batch", role: "ingest",
                                          #"{"vectors":[\#(entries.joined(separator: ","))]}"#, expect: 200)
            guard response.text.contains(#""failed":0"#) else { throw CLIError.failed("vector batch: refused items") }
        }

        func writeBatches(_ pids: [String], rows: Range<Int>, batchSize: Int, clients: Int, into collection: String) async throws {
            let batches = stride(from: 0, to: pids.count, by: batchSize).map { $0..<min($0 + batchSize, pids.count) }
            try await parallel(clients: clients, count: batches.count) { index in
                let range = batches[index]
                try await writeBatch(Array(pids[range]), rows: (rows.lowerBound + range.lowerBound)..<(rows.lowerBound + range.upperBound),
                                   into: collection)
            }
        }

        func fullSingle(first: Int, count: Int, into collection: String) async throws {
            try await parallel(clients: 64, count: count) { index in
                let row = first + index
                let registered = try await send("POST", "/v1/subjects", role: "ingest", subjectJSON("full-\(row)"), expect: 201)
                guard let object = try JSONSerialization.jsonObject(with: Data(registered.body)) as? [String: Any],
                      let pid = object["pid"] as? String else { throw CLIError.failed("registration: no pid") }
                _ = try await send("POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                                   #"{"action":"grant","purposes":["product_recs"],"source":"bench","collected_at":"2026-01-01T00:00:00Z"}"#,
                                   expect: 201)
                _ = try await send("PUT", "/v1/collections/\(collection)/vectors/\(pid)", role: "ingest", #"{"vector":\#(vectorJSON[row])}"#, expect: 200)
            }
        }

        func fullBatches(first: Int, count: Int, batchSize: Int, into collection: String) async throws {
            let batches = stride(from: 0, to: count, by: batchSize).map { (first + $0)..<(first + min($0 + batchSize, count)) }
            try await parallel(clients: batchClients, count: batches.count) { index in
                let rows = batches[index]
                let pids = try await registerAndGrantBatch(rows.map { "full-\($0)" })
                try await writeBatch(pids, rows: rows, into: collection)
            }
        }

        /// Rows/s of the full load's rows (a subject with its identifier, a
        /// grant, a vector of `floats`; keyed by random pids, as the node's
        /// are) written by plain INSERTs, a transaction per `batchSize`
        /// subjects, into a database of their own.
        func plainInserts(of floats: SyntheticVectors, count: Int, batchSize: Int, rows: Range<Int>, path: String) throws -> Double {
            let database = try Database(path: path)
            try database.executeScript("""
                CREATE TABLE subjects (pid TEXT PRIMARY KEY, identifier TEXT NOT NULL UNIQUE, region TEXT NOT NULL) STRICT;
                CREATE TABLE consents (pid TEXT NOT NULL, purpose TEXT NOT NULL, source TEXT NOT NULL, collected_at TEXT NOT NULL,
                                       PRIMARY KEY (pid, purpose)) STRICT;
                CREATE TABLE vectors (collection TEXT NOT NULL, pid TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (collection, pid)) STRICT;
                """)
            let subject = try database.statement("INSERT INTO subjects VALUES (?, ?, 'eu')")
            let consent = try database.statement("INSERT INTO consents VALUES (?, 'product_recs', 'bench', '2026-01-01T00:00:00Z')")
            let vector = try database.statement("INSERT INTO vectors VALUES ('plain', ?, ?)")
            // Keys spread as the node's are (a pid is a keyed hash): random, of a pid's length.
            var random = SeededRandom(seed: 18)
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            let pids = rows.map { _ in "psn:v1:eu:" + String((0..<43).map { _ in alphabet[Int(random.next() % 64)] }) }
            return try rate(count) {
                for start in stride(from: rows.lowerBound, to: rows.upperBound, by: batchSize) {
                    try database.transaction {
                        for row in start..<min(start + batchSize, rows.upperBound) {
                            let pid = pids[row - rows.lowerBound]
                            try subject.bind([pid, "full-\(row)"]); try subject.run()
                            try consent.bind([pid]); try consent.run()
                            let blob = floats[row].withUnsafeBytes { Array($0) }
                            try vector.bind([pid, blob]); try vector.run()
                        }
                    }
                }
            }
        }

        /// Batch bodies of `batchSize` vectors read per second by Foundation's
        /// JSONDecoder (what the routes did) and by `VectorJSON`, same bodies.
        func decodingRates(batchSize: Int) throws -> (foundation: Double, fast: Double) {
            struct Entry: Decodable { let pid: String; let vector: [Double] }
            struct Body: Decodable { let vectors: [Entry] }
            let entries = (0..<batchSize).map { #"{"pid":"p\#($0)","vector":\#(vectorJSON[$0])}"# }
            let body = Array(#"{"vectors":[\#(entries.joined(separator: ","))]}"#.utf8)
            let rounds = 5
            var foundationCount = 0, fastCount = 0
            let foundation = try rate(rounds) {
                for _ in 0..<rounds { foundationCount += try JSONCoding.decoder.decode(Body.self, from: Data(body)).vectors.count }
            }
            let fast = try rate(rounds) {
                for _ in 0..<rounds {
                    fastCount += VectorJSON.entries(in: body, list: "vectors", text: "pid", numbers: "vector")?.count ?? 0
                }
            }
            guard foundationCount == fastCount else { throw CLIError.failed("the two readers read different batches") }
            return (foundation, fast)
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
