import DomicileModel
import DomicileNet
import DomicileNode
import Foundation

/// `domicile bench node`: a real node (in-process, real sockets, real SQLite)
/// under receipt ingestion and consent reads.
struct BenchNodeCommand: Command {
    static let path = ["bench", "node"]
    static let summary = "benchmark receipt ingestion and consent reads on a node"
    static let help = """
        [--seconds N] [--subjects N] [--batch N] [--connections N] [--dir DIR]

        Lays out a one-region node in DIR (default: a temporary directory), registers --subjects
        subjects (default 2000), then measures, each for --seconds (default 5):
          - receipts per second through POST /v1/consents/batch (batches of --batch, default 500,
            from 4 concurrent clients), against single POST /v1/subjects/{pid}/consents from 64
            concurrent clients in the same run. Every receipt is durable and audited when acknowledged.
          - GET /v1/subjects/{pid}/consent under wrk (--connections, default 64), random pids,
            against GET /healthz on the same server. Each consent read appends a durable audit event.
        Needs wrk for the second part. Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = try arguments.integer("seconds", default: 5, range: 1...120)
        let subjectCount = try arguments.integer("subjects", default: 2_000, range: 10...1_000_000)
        let batchSize = try arguments.integer("batch", default: 500, range: 1...1_000)
        let connections = try arguments.integer("connections", default: 64, range: 1...4_096)
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-node-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        try ClusterInitCommand.write(.init(directory: directory, regions: [try RegionID("eu")], nodesPerRegion: 1, httpPort: 0, gossipPort: 0),
                                     policy: Array(DefaultPolicy.json.utf8), force: true)
        let configPath = (directory as NSString).appendingPathComponent("eu-1/config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        config["log"] = ["access": false]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let tokens = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("tokens.json")))) as! [String: String]
        let quiet = open("/dev/null", O_WRONLY)
        defer { close(quiet) }
        let node = try await Node.start(try NodeConfiguration.load(path: configPath), logger: Logger(clock: SystemClock(), descriptor: quiet))
        let address = node.httpAddress
        var clientSettings = HTTPClient.Settings()
        clientSettings.connectionsPerPeerMax = 256
        clientSettings.requestTimeoutMilliseconds = 60_000
        let client = HTTPClient(settings: clientSettings)
        let ingest: HTTPHeaders = ["Authorization": "Bearer \(tokens["ingest"]!)", "Content-Type": "application/json"]

        Output.line("domicile bench node (\(seconds) s per figure, \(System.coreCount) cores, WAL + synchronous=FULL, audited)")
        let pids = try await register(subjectCount, client: client, address: address, headers: ingest)
        Output.line("registered \(pids.count) subjects")

        let single = try await ingestSingle(pids, seconds: seconds, client: client, address: address, headers: ingest)
        let batched = try await ingestBatches(pids, batchSize: batchSize, seconds: seconds, client: client, address: address, headers: ingest)
        Output.line("receipts/s   single POST (64 clients)          " + String(format: "%9.0f", single))
        Output.line("receipts/s   batch of \(batchSize) (4 clients)".padding(toLength: 47, withPad: " ", startingAt: 0)
                    + String(format: "%9.0f   ratio %.1f", batched, batched / single))

        if let wrk = ChildProcess.find("wrk") {
            let script = (directory as NSString).appendingPathComponent("consent.lua")
            let sample = pids.shuffled().prefix(1_000).map { "\"\($0)\"" }.joined(separator: ",")
            try """
                local pids = {\(sample)}
                local counter = 0
                request = function()
                    counter = counter + 1
                    local pid = pids[(counter % #pids) + 1]
                    return wrk.format("GET", "/v1/subjects/" .. pid .. "/consent", {["Authorization"] = "Bearer \(tokens["serve"]!)"})
                end
                """.write(toFile: script, atomically: true, encoding: .utf8)
            let health = try BenchHTTPCommand.measure(wrk, port: address.port, route: "/healthz", extra: [], seconds: seconds,
                                                      connections: connections, threads: 1)
            let consent = try BenchHTTPCommand.measure(wrk, port: address.port, route: "/", extra: ["-s", script], seconds: seconds,
                                                       connections: connections, threads: 1)
            Output.line("GET /healthz (reference)         " + String(format: "%9.0f req/s   p99 %6.2f ms", health.rate, health.p99Milliseconds))
            Output.line("GET /v1/subjects/{pid}/consent   " + String(format: "%9.0f req/s   p99 %6.2f ms   ratio %.2f",
                                                                        consent.rate, consent.p99Milliseconds, consent.rate / health.rate))
        } else {
            Output.line("wrk is not installed: consent reads not measured")
        }
        await node.shutdown(graceMilliseconds: 2_000)
    }

    static func register(_ count: Int, client: HTTPClient, address: SocketAddress, headers: HTTPHeaders) async throws -> [String] {
        try await withThrowingTaskGroup(of: [String].self) { group in
            let workers = 32
            for worker in 0..<workers {
                group.addTask {
                    var pids: [String] = []
                    for index in stride(from: worker, to: count, by: workers) {
                        let body = Array(#"{"identifier":{"kind":"customer_id","value":"bench-\#(index)"},"region":"eu"}"#.utf8)
                        let response = try await client.send("POST", "/v1/subjects", to: address, headers: headers, body: body)
                        guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                              let pid = object["pid"] as? String else { throw CLIError.failed("registration failed: \(response.status)") }
                        pids.append(pid)
                    }
                    return pids
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }

    static func receiptJSON(action: String, pid: String?) -> String {
        let pidField = pid.map { #""pid":"\#($0)","# } ?? ""
        return #"{\#(pidField)"action":"\#(action)","purposes":["product_recs"],"source":"bench","collected_at":"2026-01-01T00:00:00Z"}"#
    }

    static func ingestSingle(_ pids: [String], seconds: Int, client: HTTPClient, address: SocketAddress,
                             headers: HTTPHeaders) async throws -> Double {
        let deadline = Bench.monotonicSeconds() + Double(seconds)
        let start = Bench.monotonicSeconds()
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    var done = 0
                    while Bench.monotonicSeconds() < deadline {
                        let pid = pids[(worker * 7919 + done * 64) % pids.count]
                        let response = try await client.send("POST", "/v1/subjects/\(pid)/consents", to: address, headers: headers,
                                                             body: Array(receiptJSON(action: done % 2 == 0 ? "grant" : "revoke", pid: nil).utf8))
                        guard response.status == 201 else { throw CLIError.failed("receipt refused: \(response.status) \(response.text)") }
                        done += 1
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(total) / (Bench.monotonicSeconds() - start)
    }

    static func ingestBatches(_ pids: [String], batchSize: Int, seconds: Int, client: HTTPClient, address: SocketAddress,
                              headers: HTTPHeaders) async throws -> Double {
        let deadline = Bench.monotonicSeconds() + Double(seconds)
        let start = Bench.monotonicSeconds()
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var done = 0
                    var round = 0
                    while Bench.monotonicSeconds() < deadline {
                        let entries = (0..<batchSize).map { index in
                            receiptJSON(action: round % 2 == 0 ? "grant" : "revoke", pid: pids[(worker * 104_729 + round * batchSize + index) % pids.count])
                        }
                        let body = Array(#"{"receipts":[\#(entries.joined(separator: ","))]}"#.utf8)
                        let response = try await client.send("POST", "/v1/consents/batch", to: address, headers: headers, body: body)
                        guard response.status == 201 else { throw CLIError.failed("batch refused: \(response.status) \(response.text)") }
                        done += batchSize
                        round += 1
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(total) / (Bench.monotonicSeconds() - start)
    }
}
