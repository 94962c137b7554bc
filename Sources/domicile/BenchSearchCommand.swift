import DomicileModel
import DomicileNet
import DomicileVectors
import Foundation

/// `domicile bench search`: federated search on real processes, three
/// regions of three nodes on loopback — its latency from replicas and fresh
/// against a local search in the same run, and fresh with one region paused
/// beyond the deadline.
struct BenchSearchCommand: Command {
    static let path = ["bench", "search"]
    static let summary = "federated search latency (replicas, fresh, a region paused) against a local search, on real processes"
    static let help = """
        [--subjects N] [--dimension D] [--queries N] [--k K] [--deadline-ms MS] [--wan] [--tls] [--dir DIR]

        Three regions of three nodes (each region one region log) on loopback, from this binary. Each region
        gets N subjects (default 300) with a clustered synthetic vector of D dimensions (default 128) in a
        cosine collection with export settings (ε 4, δ 1e-6, clip norm 1); the run waits until every region
        holds the others' noised copies. Then, from one client on eu-1 (a follower or the leader, as the
        election made it), --queries searches (default 300, k 10) of each kind, one at a time:
        local; federated from replicas; federated fresh (one hedged request per region); and fresh with
        br's three nodes paused (SIGSTOP) beyond --deadline-ms (default 200). Reported: p50 and p99 of each,
        and each as a ratio to the local search's p50 measured in the same run. Then up to ten us subjects
        are revoked one at a time, each timed until eu-1's replicas no longer find it. --wan shapes the links between
        regions in the nodes' own transports with cluster/round-trips's times (eu-us 80, us-br 120, eu-br 190 ms).
        --tls runs it all again on a federation serving TLS 1.3 (cluster init --tls) and prints each figure
        against plaintext's: the loading writes per second and each search's p50 and p99.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let subjects = try arguments.integer("subjects", default: 300, range: 10...100_000)
        let dimension = try arguments.integer("dimension", default: 128, range: 2...4_096)
        let queries = try arguments.integer("queries", default: 300, range: 10...100_000)
        let k = try arguments.integer("k", default: 10, range: 1...100)
        let deadline = try arguments.integer("deadline-ms", default: 200, range: 10...60_000)
        let wan = arguments.flag("wan")
        let tls = arguments.flag("tls")
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-search-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        Output.line("domicile bench search (\(System.coreCount) cores, loopback\(wan ? " shaped as a WAN" : ""), 3 regions × 3 nodes, "
                    + "\(subjects) subjects × \(dimension) dimensions per region)")
        let settings = Settings(subjects: subjects, dimension: dimension, queries: queries, k: k, deadline: deadline, wan: wan)
        let plaintext = try await measureFederation(settings, tls: false, directory: (directory as NSString).appendingPathComponent("plaintext"))
        report(plaintext, settings, transport: "plaintext")
        guard tls else { return }
        let encrypted = try await measureFederation(settings, tls: true, directory: (directory as NSString).appendingPathComponent("tls"))
        report(encrypted, settings, transport: "TLS 1.3")
        Output.line("TLS against plaintext, same run: loading \(String(format: "%.2f", encrypted.writesPerSecond / plaintext.writesPerSecond))× "
                    + "the writes per second")
        for ((name, secure), (_, plain)) in zip(encrypted.rows, plaintext.rows) {
            Output.line("  " + name.padding(toLength: 36, withPad: " ", startingAt: 0)
                        + String(format: "p50 %.2f× plaintext's, p99 %.2f×", secure.p50 / plain.p50, secure.p99 / plain.p99))
        }
    }

    struct Settings {
        let subjects, dimension, queries, k, deadline: Int
        let wan: Bool
    }

    /// One federation's figures.
    struct Measured {
        let rows: [(String, Latency)]
        /// Subjects loaded per second (register, grant, vector: three writes each), 16 at a time.
        let writesPerSecond: Double
        let replicated: Double
        let retractions: [Double]
    }

    static func measureFederation(_ settings: Settings, tls: Bool, directory: String) async throws -> Measured {
        let (subjects, queries, k, deadline) = (settings.subjects, settings.queries, settings.k, settings.deadline)
        let regions = try ["eu", "us", "br"].map { try RegionID($0) }
        let federation = try LocalFederation(directory: directory, regions: regions, nodesPerRegion: 3,
                                             wanRoundTrips: settings.wan ? ["eu-us": 80, "us-br": 120, "eu-br": 190] : [:], tls: tls)
        try raiseEmbeddingBudgets(federation)
        defer { federation.stopAll() }
        for node in federation.nodeNames { try federation.start(node) }
        try await BenchFederationCommand.waitUntilFederated(federation)

        let data = SyntheticVectors.clustered(count: 3 * subjects + queries, dimension: settings.dimension, clusters: 24, seed: 16)
        let loading = Bench.monotonicSeconds()
        let pids = try await load(federation, data: data, subjects: subjects, dimension: settings.dimension)
        let writesPerSecond = Double(3 * 3 * subjects) / (Bench.monotonicSeconds() - loading)
        let started = Bench.monotonicSeconds()
        try await waitForReplicas(federation, subjects: subjects, probe: data[3 * subjects], k: k)
        let replicated = Bench.monotonicSeconds() - started

        let probes = (0..<queries).map { data[3 * subjects + $0] }
        func body(_ vector: [Float], _ extra: String) -> String {
            #"{"vector":[\#(vector.map { String($0) }.joined(separator: ","))],"k":\#(k),"purpose":"product_recs"\#(extra)}"#
        }
        var rows: [(String, Latency)] = []
        rows.append(("local", try await measure(federation, probes) { body($0, "") }))
        rows.append(("federated, replicas", try await measure(federation, probes) { body($0, #","scope":"federated""#) }))
        rows.append(("federated, fresh", try await measure(federation, probes) { body($0, #","scope":"federated","fresh":true"#) }))
        for node in federation.nodes(of: "br") { federation.processes[node]?.signal(SIGSTOP) }
        // The first searches after the pause wait out the deadline; once gossip declares br's nodes dead, br is skipped at once.
        let paused = try await measure(federation, probes) { body($0, #","scope":"federated","fresh":true,"deadline_ms":\#(deadline)"#) }
        for node in federation.nodes(of: "br") { federation.processes[node]?.signal(SIGCONT) }
        rows.append(("fresh, br paused (deadline \(deadline) ms)", paused))

        let retractions = try await retraction(federation, pids: pids["us"]!, vectors: (0..<subjects).map { data[subjects + $0] })
        return Measured(rows: rows, writesPerSecond: writesPerSecond, replicated: replicated, retractions: retractions)
    }

    static func report(_ measured: Measured, _ settings: Settings, transport: String) {
        Output.line("\(transport): loaded at \(Int(measured.writesPerSecond)) writes/s; replicas of every region's \(settings.subjects) copies "
                    + String(format: "reached eu-1 %.1f s after the last write", measured.replicated))
        let reference = measured.rows[0].1.p50
        Output.line("search from eu-1, k \(settings.k), \(settings.queries) queries each, one at a time")
        Output.line("kind                                   p50 ms    p99 ms   p50 / local p50   partial   br missing because")
        for (name, latency) in measured.rows {
            let reasons = latency.reasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            Output.line(name.padding(toLength: 36, withPad: " ", startingAt: 0)
                        + String(format: "%9.2f %9.2f %17.1f %9d   ", latency.p50 * 1_000, latency.p99 * 1_000, latency.p50 / reference, latency.partial)
                        + reasons + (latency.timedOutP50.map { String(format: " (those timed out: median %.0f ms)", $0 * 1_000) } ?? ""))
        }
        if !measured.retractions.isEmpty {
            let sorted = measured.retractions.sorted()
            Output.line(String(format: "a revoke in us until eu-1's replicas drop the copy (%d subjects): median %.0f ms, max %.0f ms",
                               sorted.count, sorted[sorted.count / 2] * 1_000, sorted.last! * 1_000))
        }
    }

    struct Latency {
        let p50: Double
        let p99: Double
        let partial: Int
        /// Why br was missing, and how often.
        let reasons: [String: Int]
        /// The median of the searches during which br timed out (nil: none did).
        let timedOutP50: Double?
    }

    /// Budgets that hold every export, and no access log.
    static func raiseEmbeddingBudgets(_ federation: LocalFederation) throws {
        for node in federation.nodeNames {
            let path = federation.path("\(node)/config.json")
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["embedding_epsilon_per_period"] = 1e6
            limits["read_rate_per_second"] = 1e6
            limits["read_burst"] = 1e6
            config["limits"] = limits
            config["log"] = ["access": false]
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
        }
    }

    /// Per region: the collection, then its subjects, granted, with their vectors (16 at a time).
    /// Returns each region's pids, in the order of their vectors.
    static func load(_ federation: LocalFederation, data: SyntheticVectors, subjects: Int, dimension: Int) async throws -> [String: [String]] {
        var pids: [String: [String]] = [:]
        for (offset, (region, country)) in [("eu", "DE"), ("us", "US"), ("br", "BR")].enumerated() {
            let registeredPIDs = Locked([Int: String]())
            let nodes = federation.nodes(of: region)
            let defined = try await federation.call(nodes[0], "PUT", "/v1/collections/taste", role: "admin", json: """
                {"dimension":\(dimension),"metric":"cosine","purpose":"product_recs","export":{"epsilon":4,"delta":1e-6,"clip_norm":1}}
                """)
            guard [200, 201].contains(defined.status) else { throw CLIError.failed("collection refused: \(defined.status) \(defined.code)") }
            let caller = federation.caller
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<subjects {
                    if index >= 16 { try await group.next() }
                    let vector = data[offset * subjects + index]
                    group.addTask {
                        let node = nodes[index % nodes.count]
                        let registered = try await caller.call(node, "POST", "/v1/subjects", role: "ingest",
                                                               json: #"{"identifier":{"kind":"customer_id","value":"bench-\#(region)-\#(index)"},"country":"\#(country)"}"#)
                        guard let pid = registered.json["pid"] as? String else { throw CLIError.failed("registration failed: \(registered.status)") }
                        registeredPIDs.withLock { $0[index] = pid }
                        _ = try await caller.call(node, "POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                                                  json: #"{"action":"grant","purposes":["product_recs"],"source":"bench","collected_at":"2026-01-01T00:00:00Z"}"#)
                        let stored = try await caller.call(node, "PUT", "/v1/collections/taste/vectors/\(pid)", role: "ingest",
                                                           json: #"{"vector":[\#(vector.map { String($0) }.joined(separator: ","))]}"#)
                        guard stored.status == 200 else { throw CLIError.failed("a vector was refused: \(stored.status) \(stored.code)") }
                    }
                }
                try await group.waitForAll()
            }
            pids[region] = registeredPIDs.withLock { found in (0..<subjects).map { found[$0]! } }
        }
        return pids
    }

    /// Revokes up to ten us subjects that eu-1's replicas find by their own vector, one at a time; each timed
    /// from the revoke's answer until eu-1's replica search no longer finds it.
    static func retraction(_ federation: LocalFederation, pids: [String], vectors: [[Float]]) async throws -> [Double] {
        var seconds: [Double] = []
        for (pid, vector) in zip(pids, vectors) where seconds.count < 10 {
            let body = #"{"vector":[\#(vector.map { String($0) }.joined(separator: ","))],"k":100,"purpose":"product_recs","scope":"federated"}"#
            func found() async throws -> Bool {
                let reply = try await federation.call("eu-1", "POST", "/v1/collections/taste/search", role: "serve", json: body)
                return (reply.json["results"] as? [[String: Any]] ?? []).contains { $0["pid"] as? String == pid }
            }
            guard try await found() else { continue }
            let revoked = try await federation.call("us-1", "POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                                                    json: #"{"action":"revoke","purposes":["product_recs"],"source":"bench","collected_at":"2026-01-02T00:00:00Z"}"#)
            guard revoked.status == 201 else { throw CLIError.failed("a revoke failed: \(revoked.status) \(revoked.code)") }
            let started = Bench.monotonicSeconds()
            while try await found() {
                guard Bench.monotonicSeconds() - started < 30 else { throw CLIError.failed("a revoked copy stayed on eu-1 for 30 s") }
                try await Task.sleep(nanoseconds: 5_000_000)
            }
            seconds.append(Bench.monotonicSeconds() - started)
        }
        return seconds
    }

    /// Until eu-1 holds, per other region, as many noised copies as it has subjects (a search for all of them reports so).
    static func waitForReplicas(_ federation: LocalFederation, subjects: Int, probe: [Float], k: Int) async throws {
        let body = #"{"vector":[\#(probe.map { String($0) }.joined(separator: ","))],"k":100,"purpose":"product_recs","scope":"federated"}"#
        let complete = await DemoCommand.waitUntil(seconds: 120) {
            guard let reply = try? await federation.call("eu-1", "POST", "/v1/collections/taste/search", role: "serve", json: body),
                  let regions = reply.json["regions"] as? [String: [String: Any]] else { return false }
            return ["us", "br"].allSatisfy { (regions[$0]?["hits"] as? Int) == min(100, subjects) }
        }
        guard complete else { throw CLIError.failed("the replicas did not reach eu-1 in 120 s") }
        // Every export of every region published and applied: wait until a round passes with nothing new.
        try await Task.sleep(nanoseconds: 2_000_000_000)
    }

    static func measure(_ federation: LocalFederation, _ probes: [[Float]], body: ([Float]) -> String) async throws -> Latency {
        var seconds: [Double] = []
        var partial = 0
        var reasons: [String: Int] = [:]
        var timedOut: [Double] = []
        for probe in probes {
            let started = Bench.monotonicSeconds()
            let reply = try await federation.call("eu-1", "POST", "/v1/collections/taste/search", role: "serve", json: body(probe))
            seconds.append(Bench.monotonicSeconds() - started)
            guard reply.status == 200 else { throw CLIError.failed("a search failed: \(reply.status) \(reply.code)") }
            if reply.json["partial"] as? Bool == true { partial += 1 }
            if let reason = ((reply.json["regions"] as? [String: [String: Any]])?["br"])?["reason"] as? String {
                reasons[reason, default: 0] += 1
                if reason == "timeout" { timedOut.append(seconds.last!) }
            }
        }
        let sorted = seconds.sorted()
        return Latency(p50: sorted[sorted.count / 2], p99: sorted[min(sorted.count - 1, sorted.count * 99 / 100)], partial: partial,
                       reasons: reasons, timedOutP50: timedOut.isEmpty ? nil : timedOut.sorted()[timedOut.count / 2])
    }
}
