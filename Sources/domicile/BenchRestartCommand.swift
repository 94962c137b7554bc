import DomicileModel
import DomicileNet
import DomicileVectors
import Foundation

/// `domicile bench restart`: restart to first search, rebuilding the graph
/// from SQLite against restoring its saved snapshot, on one node's data directory.
struct BenchRestartCommand: Command {
    static let path = ["bench", "restart"]
    static let summary = "restart to first search: a graph rebuilt from SQLite against one restored from its snapshot"
    static let help = """
        [--count 100000] [--dimension 384] [--batch 1000] [--no-rebuild] [--dir DIR]

        On a one-region node (in-process, real sockets, real SQLite), loads --count subjects with a
        grant and a vector (cosine, hnsw m 16, ef_construction 200) through the batch endpoints, with
        graph snapshots off. Then, same run:
          - stop, start: the graph is rebuilt from SQLite (every vector read, unsealed and inserted);
          - stop, which saves the graph (timed), start: the graph is restored from its snapshot and the
            vectors put back into their slots;
        each timed from the start call to the first search answered over HTTP, with the process's
        resident memory after it, and the snapshot file's size. Both indexes answer the same queries
        alike (checked). --no-rebuild skips the rebuild (at 1M it takes as long as the load): the
        load's own stop saves the graph. Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let count = try arguments.integer("count", default: 100_000, range: 100...10_000_000)
        let dimension = try arguments.integer("dimension", default: 384, range: 2...4_096)
        let batchSize = try arguments.integer("batch", default: 1_000, range: 1...1_000)
        let rebuild = !arguments.flag("no-rebuild")
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-restart-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        Output.line("domicile bench restart: --count \(count), dimension \(dimension) (cosine, hnsw m 16, ef_construction 200), "
                    + "\(System.coreCount) cores, WAL + synchronous=FULL")
        func limits(snapshots: Bool) -> [String: Any] {
            ["batch_items_max": batchSize, "batch_receipts_max": batchSize,
             "graph_snapshot_interval_ms": snapshots ? 86_400_000 : 0, "graph_snapshot_changes": 100_000_000]
        }
        var bench = try await BenchNode.start(in: directory, limits: limits(snapshots: !rebuild), requestTimeoutMilliseconds: 3_600_000)
        let queries: [String]
        do {
            let vectors = SyntheticVectors.clustered(count: count + 100, dimension: dimension, clusters: 100, seed: 3)
            let json: @Sendable (Int) -> String = { row in "[" + vectors[row].map { String($0) }.joined(separator: ",") + "]" }
            queries = (count..<vectors.count).map(json)
            let load = BenchLoadCommand.Load(bench: bench, dimension: dimension, index: "hnsw", batchClients: 4, vectorJSON: [])
            try await load.define("restart")
            let started = Bench.monotonicSeconds()
            // Each batch's JSON rendered when it is sent: a million rendered vectors would not fit beside the index.
            let batches = stride(from: 0, to: count, by: batchSize).map { $0..<min($0 + batchSize, count) }
            try await load.parallel(clients: 4, count: batches.count) { [bench] index in
                let rows = batches[index]
                let batch = BenchLoadCommand.Load(bench: bench, dimension: dimension, index: "hnsw", batchClients: 4, vectorJSON: rows.map(json))
                let pids = try await batch.registerAndGrantBatch(rows.map { "full-\($0)" })
                try await batch.writeBatch(pids, rows: 0..<rows.count, into: "restart")
            }
            let seconds = Bench.monotonicSeconds() - started
            Output.line(String(format: "load (register, grant, vector; 4 clients)   %8.1f s   %7.0f vectors/s   RSS ", seconds,
                               Double(count) / seconds) + residentMemory())
        } catch {
            await bench.stop()
            throw error
        }
        var started = Bench.monotonicSeconds()
        await bench.stop()
        let graphs = (directory as NSString).appendingPathComponent("eu-1/data/graphs")
        try setLimits(limits(snapshots: true), in: directory)
        var rebuilt: (answers: [String], seconds: Double)?
        if rebuild {
            // Rebuild: no snapshot on disk.
            try? FileManager.default.removeItem(atPath: graphs)
            started = Bench.monotonicSeconds()
            bench = try await BenchNode.start(in: directory, limits: [:], requestTimeoutMilliseconds: 3_600_000, layOut: false)
            var answers = try await search(bench, [queries[0]])
            let seconds = Bench.monotonicSeconds() - started
            answers += try await search(bench, Array(queries.dropFirst()))
            rebuilt = (answers, seconds)
            Output.line(String(format: "restart to first search, rebuild            %8.1f s   RSS ", seconds) + residentMemory())
            started = Bench.monotonicSeconds()
            await bench.stop()
        }
        let stopSeconds = Bench.monotonicSeconds() - started
        let file = (graphs as NSString).appendingPathComponent("restart.graph")
        let size = ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? 0
        Output.line(String(format: "stop, saving the snapshot                   %8.1f s   file %.1f MB (%.0f bytes/vector)", stopSeconds,
                           Double(size) / 1e6, Double(size) / Double(count)))

        // Restore: the snapshot the stop wrote.
        started = Bench.monotonicSeconds()
        bench = try await BenchNode.start(in: directory, limits: [:], requestTimeoutMilliseconds: 3_600_000, layOut: false)
        var restored = try await search(bench, [queries[0]])
        let restoreSeconds = Bench.monotonicSeconds() - started
        restored += try await search(bench, Array(queries.dropFirst()))
        Output.line(String(format: "restart to first search, snapshot           %8.1f s   RSS ", restoreSeconds) + residentMemory()
                    + (rebuilt.map { String(format: "   %.1f× faster", $0.seconds / restoreSeconds) } ?? ""))
        await bench.stop()
        if let rebuilt {
            guard rebuilt.answers == restored else { throw CLIError.failed("the restored graph answered differently from the rebuilt one") }
            Output.line("the rebuilt and the restored graph answered \(queries.count) searches alike")
        }
    }

    /// Every query's results.
    private static func search(_ bench: BenchNode, _ queries: [String]) async throws -> [String] {
        var answers: [String] = []
        for query in queries {
            let response = try await bench.client.send("POST", "/v1/collections/restart/search", to: bench.address, headers: bench.headers("serve"),
                                                       body: Array(#"{"vector":\#(query),"k":10,"purpose":"product_recs"}"#.utf8))
            guard response.status == 200 else { throw CLIError.failed("search: \(response.status) \(response.text.prefix(300))") }
            let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            answers.append(String(decoding: try JSONSerialization.data(withJSONObject: object?["results"] ?? [], options: [.sortedKeys]),
                                  as: UTF8.self))
        }
        return answers
    }

    private static func setLimits(_ limits: [String: Any], in directory: String) throws {
        let path = BenchNode.configPath(in: directory)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        config["limits"] = limits
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
    }

    /// VmRSS of this process (the node runs in it), in MB.
    private static func residentMemory() -> String {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return "?" }
        return String(format: "%.0f MB", kilobytes / 1_024)
    }
}
