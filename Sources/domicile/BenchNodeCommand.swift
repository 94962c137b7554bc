import DomicileModel
import DomicileNet
import DomicileNode
import Foundation

/// `domicile bench node`: a real node (in-process, real sockets, real SQLite)
/// under receipt ingestion and consent reads.
struct BenchNodeCommand: Command {
    static let path = ["bench", "node"]
    static let summary = "benchmark receipt ingestion, consent and feature reads, and erasure on a node"
    static let help = """
        [--seconds N] [--subjects N] [--batch N] [--connections N] [--dir DIR]

        Lays out a one-region node in DIR (default: a temporary directory), registers --subjects
        subjects (default 2000), then measures, each for --seconds (default 5):
          - receipts per second through POST /v1/consents/batch (batches of --batch, default 500,
            from 4 concurrent clients), against single POST /v1/subjects/{pid}/consents from 64
            concurrent clients in the same run. Every receipt is durable and audited when acknowledged.
          - GET /v1/subjects/{pid}/consent under wrk (--connections, default 64), random pids,
            against GET /healthz on the same server. Each consent read appends a durable audit event.
          - feature writes (PUT /v1/subjects/{pid}/features, 4 values, 64 clients) against single receipts,
            and GET /v1/subjects/{pid}/features?purpose=product_recs under wrk against consent reads.
          - erasure latency of subjects holding 100 feature values each (erase, sign, checkpoint and
            truncate the WAL), against the latency of one receipt append, both sequential.
        Needs wrk for the read figures. Build with -c release.
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

        // The limiter and the access monitor still run on every read; they just never refuse here.
        let bench = try await BenchNode.start(in: directory, limits: ["read_rate_per_second": 10_000_000, "read_burst": 10_000_000,
                                                                      "distinct_subjects_per_minute": 100_000_000],
                                              requestTimeoutMilliseconds: 60_000)
        let (client, address, tokens) = (bench.client, bench.address, bench.tokens)
        let ingest = bench.headers("ingest")
        // Stopped on every path: a node dropped while its event loops run would crash the process.
        do {

            Output.line("domicile bench node (\(seconds) s per figure, \(System.coreCount) cores, WAL + synchronous=FULL, audited)")
            let pids = try await register(subjectCount, client: client, address: address, headers: ingest)
            Output.line("registered \(pids.count) subjects")

            let single = try await ingestSingle(pids, seconds: seconds, client: client, address: address, headers: ingest)
            let batched = try await ingestBatches(pids, batchSize: batchSize, seconds: seconds, client: client, address: address, headers: ingest)
            Output.line("receipts/s   single POST (64 clients)          " + String(format: "%9.0f", single))
            Output.line("receipts/s   batch of \(batchSize) (4 clients)".padding(toLength: 47, withPad: " ", startingAt: 0)
                        + String(format: "%9.0f   ratio %.1f", batched, batched / single))

            // Features: four of product_recs for reads, 96 of analytics to give erased subjects 100 values.
            let admin = bench.headers("admin")
            for index in 0..<100 {
                let purpose = index < 4 ? "product_recs" : "analytics"
                let body = #"{"type":"number","purpose":"\#(purpose)","ttl_seconds":86400,"classification":"behavioral"}"#
                let response = try await client.send("PUT", "/v1/feature-definitions/f\(index)", to: address, headers: admin, body: Array(body.utf8))
                guard response.status < 300 else { throw CLIError.failed("feature definition refused: \(response.status)") }
            }
            try await grantAll(pids, purposes: ["product_recs", "analytics"], client: client, address: address, headers: ingest)
            let featureWrites = try await writeFeatures(pids, seconds: seconds, client: client, address: address, headers: ingest)
            Output.line("feature writes/s   PUT …/features, 4 values (64 clients)   " + String(format: "%9.0f   ratio to single receipts %.2f",
                                                                                           featureWrites, featureWrites / single))

            if let wrk = ChildProcess.find("wrk") {
                let sample = pids.shuffled().prefix(1_000)
                let consentScript = try wrkScript(directory: directory, name: "consent", pids: sample, path: "/consent", token: tokens["serve"]!)
                let featureScript = try wrkScript(directory: directory, name: "features", pids: sample, path: "/features?purpose=product_recs",
                                                  token: tokens["serve"]!)
                let health = try BenchHTTPCommand.measure(wrk, port: address.port, route: "/healthz", extra: [], seconds: seconds,
                                                          connections: connections, threads: 1)
                let consent = try BenchHTTPCommand.measure(wrk, port: address.port, route: "/", extra: ["-s", consentScript], seconds: seconds,
                                                           connections: connections, threads: 1)
                let features = try BenchHTTPCommand.measure(wrk, port: address.port, route: "/", extra: ["-s", featureScript], seconds: seconds,
                                                            connections: connections, threads: 1)
                Output.line("GET /healthz (reference)                " + String(format: "%9.0f req/s   p99 %6.2f ms", health.rate, health.p99Milliseconds))
                Output.line("GET /v1/subjects/{pid}/consent          " + String(format: "%9.0f req/s   p99 %6.2f ms   ratio %.2f",
                                                                                   consent.rate, consent.p99Milliseconds, consent.rate / health.rate))
                Output.line("GET /v1/subjects/{pid}/features?purpose " + String(format: "%9.0f req/s   p99 %6.2f ms   ratio to consent reads %.2f",
                                                                                   features.rate, features.p99Milliseconds, features.rate / consent.rate))
            } else {
                Output.line("wrk is not installed: consent and feature reads not measured")
            }

            let (erasure, append) = try await erasureLatency(pids, client: client, address: address, tokens: tokens)
            Output.line("erasure of a subject with 100 features   " + String(format: "median %6.2f ms   p90 %6.2f ms", erasure.median, erasure.p90))
            Output.line("receipt append (reference)               " + String(format: "median %6.2f ms   p90 %6.2f ms   ratio %.1f",
                                                                                  append.median, append.p90, erasure.median / append.median))
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()
    }

    static func wrkScript(directory: String, name: String, pids: ArraySlice<String>, path: String, token: String) throws -> String {
        let script = (directory as NSString).appendingPathComponent("\(name).lua")
        try """
            local pids = {\(pids.map { "\"\($0)\"" }.joined(separator: ","))}
            local counter = 0
            request = function()
                counter = counter + 1
                local pid = pids[(counter % #pids) + 1]
                return wrk.format("GET", "/v1/subjects/" .. pid .. "\(path)", {["Authorization"] = "Bearer \(token)"})
            end
            """.write(toFile: script, atomically: true, encoding: .utf8)
        return script
    }

    static func grantAll(_ pids: [String], purposes: [String], client: HTTPClient, address: SocketAddress, headers: HTTPHeaders) async throws {
        let list = purposes.map { "\"\($0)\"" }.joined(separator: ",")
        for start in stride(from: 0, to: pids.count, by: 1_000) {
            let entries = pids[start..<min(start + 1_000, pids.count)].map {
                #"{"pid":"\#($0)","action":"grant","purposes":[\#(list)],"source":"bench","collected_at":"2026-01-01T00:00:00Z"}"#
            }
            let response = try await client.send("POST", "/v1/consents/batch", to: address, headers: headers,
                                                 body: Array(#"{"receipts":[\#(entries.joined(separator: ","))]}"#.utf8))
            guard response.status == 201 else { throw CLIError.failed("grant batch refused: \(response.status)") }
        }
    }

    static func writeFeatures(_ pids: [String], seconds: Int, client: HTTPClient, address: SocketAddress,
                              headers: HTTPHeaders) async throws -> Double {
        try await closedLoop(clients: 64, seconds: seconds) { worker, done in
            let pid = pids[(worker * 7919 + done * 64) % pids.count]
            let body = #"{"values":{"f0":\#(done),"f1":\#(worker),"f2":0.5,"f3":1}}"#
            let response = try await client.send("PUT", "/v1/subjects/\(pid)/features", to: address, headers: headers, body: Array(body.utf8))
            guard response.status == 200 else { throw CLIError.failed("feature write refused: \(response.status) \(response.text)") }
        }
    }

    /// Sequential erasures of subjects holding 100 feature values, and
    /// sequential receipt appends as the reference: (median, p90) in ms.
    static func erasureLatency(_ pids: [String], client: HTTPClient, address: SocketAddress,
                               tokens: [String: String]) async throws -> (erasure: (median: Double, p90: Double), append: (median: Double, p90: Double)) {
        let ingest: HTTPHeaders = ["Authorization": "Bearer \(tokens["ingest"]!)", "Content-Type": "application/json"]
        let officer: HTTPHeaders = ["Authorization": "Bearer \(tokens["privacy_officer"]!)", "Content-Type": "application/json"]
        let victims = Array(pids.suffix(30))
        let values = (0..<100).map { #""f\#($0)":\#($0)"# }.joined(separator: ",")
        for pid in victims {
            let response = try await client.send("PUT", "/v1/subjects/\(pid)/features", to: address, headers: ingest,
                                                 body: Array(#"{"values":{\#(values)}}"#.utf8))
            guard response.status == 200 else { throw CLIError.failed("feature write refused: \(response.status) \(response.text)") }
        }
        var appends: [Double] = []
        for pid in pids.prefix(30) {
            let started = Bench.monotonicSeconds()
            let response = try await client.send("POST", "/v1/subjects/\(pid)/consents", to: address, headers: ingest,
                                                 body: Array(receiptJSON(action: "grant", pid: nil).utf8))
            guard response.status == 201 else { throw CLIError.failed("receipt refused: \(response.status)") }
            appends.append((Bench.monotonicSeconds() - started) * 1_000)
        }
        var erasures: [Double] = []
        for pid in victims {
            let started = Bench.monotonicSeconds()
            let response = try await client.send("POST", "/v1/erasures", to: address, headers: officer, body: Array(#"{"pid":"\#(pid)"}"#.utf8))
            guard response.status == 202, response.text.contains(#""features":100"#) else {
                throw CLIError.failed("erasure failed: \(response.status) \(response.text)")
            }
            erasures.append((Bench.monotonicSeconds() - started) * 1_000)
        }
        func summary(_ samples: [Double]) -> (median: Double, p90: Double) {
            let sorted = samples.sorted()
            return (sorted[sorted.count / 2], sorted[Int(Double(sorted.count - 1) * 0.9)])
        }
        return (summary(erasures), summary(appends))
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
        try await closedLoop(clients: 64, seconds: seconds) { worker, done in
            let pid = pids[(worker * 7919 + done * 64) % pids.count]
            let response = try await client.send("POST", "/v1/subjects/\(pid)/consents", to: address, headers: headers,
                                                 body: Array(receiptJSON(action: done % 2 == 0 ? "grant" : "revoke", pid: nil).utf8))
            guard response.status == 201 else { throw CLIError.failed("receipt refused: \(response.status) \(response.text)") }
        }
    }

    /// `clients` concurrent clients each call `request(client, calls so far)`
    /// back to back for `seconds`; returns calls per second.
    static func closedLoop(clients: Int, seconds: Int,
                           _ request: @escaping @Sendable (_ client: Int, _ done: Int) async throws -> Void) async throws -> Double {
        let deadline = Bench.monotonicSeconds() + Double(seconds)
        let start = Bench.monotonicSeconds()
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for client in 0..<clients {
                group.addTask {
                    var done = 0
                    while Bench.monotonicSeconds() < deadline {
                        try await request(client, done)
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
