import DomicileModel
import DomicileNet
import Foundation

/// One region of real `domicile serve` processes for `domicile bench region`:
/// laid out by `cluster init` (1 or 3 nodes, with or without the region log),
/// access log off, read limits that never refuse, and a client sized for 256
/// concurrent callers.
final class BenchRegion {
    let federation: LocalFederation
    let client: HTTPClient
    let names: [String]
    let hasLog: Bool

    /// With `delayRelay`, peers dial each other's channel through a
    /// `DelayRelay` (the roster's addresses) instead of directly.
    let relay: DelayRelay?

    /// `logSettings` go into each node's `region_log` config object.
    init(directory: String, nodes: Int, regionLog: Bool, delayRelay: Bool = false, logSettings: [String: Any] = [:]) async throws {
        federation = try LocalFederation(directory: directory, regions: [try RegionID("eu")], nodesPerRegion: nodes, regionLog: regionLog)
        names = federation.nodeNames
        hasLog = regionLog
        relay = delayRelay ? try Self.relay(federation) : nil
        var settings = HTTPClient.Settings()
        settings.connectionsPerPeerMax = 512
        settings.idleConnectionsPerPeerMax = 512
        settings.requestTimeoutMilliseconds = 20_000
        client = HTTPClient(settings: settings)
        do {
            for name in names { try configure(federation.path("\(name)/config.json"), logSettings: logSettings) }
            for name in names { try federation.start(name) }
            for name in names { try await waitReady(name) }
        } catch {
            stop()
            throw error
        }
    }

    /// Moves each node's channel listener to a free port and relays its
    /// roster address there.
    private static func relay(_ federation: LocalFederation) throws -> DelayRelay {
        let base = try LocalFederation.freePortBase(count: federation.nodeNames.count)
        var routes: [(listen: Int, upstream: Int)] = []
        for (index, name) in federation.nodeNames.enumerated() {
            let path = federation.path("\(name)/config.json")
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
            var log = config["region_log"] as! [String: Any]
            let rosterPort = Int((log["address"] as! String).split(separator: ":").last!)!
            log["address"] = "127.0.0.1:\(base + index)"
            config["region_log"] = log
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
            routes.append((rosterPort, base + index))
        }
        return try DelayRelay(routes: routes)
    }

    /// The limiter and the access monitor still run on every read; they just never refuse here.
    private func configure(_ configPath: String, logSettings: [String: Any]) throws {
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        if var log = config["region_log"] as? [String: Any] {
            log.merge(logSettings) { $1 }
            config["region_log"] = log
        }
        config["log"] = ["access": false]
        config["limits"] = ["read_rate_per_second": 10_000_000, "read_burst": 10_000_000, "distinct_subjects_per_minute": 100_000_000]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
    }

    func address(_ name: String) -> SocketAddress { federation.addresses[name]! }

    func headers(_ role: String) -> HTTPHeaders {
        ["Authorization": "Bearer \(federation.tokens[role]!)", "Content-Type": "application/json"]
    }

    func waitReady(_ name: String, timeout: Double = 30) async throws {
        let deadline = Bench.monotonicSeconds() + timeout
        while Bench.monotonicSeconds() < deadline {
            if let response = try? await client.send("GET", "/readyz", to: address(name), timeoutMilliseconds: 1_000), response.status == 200 { return }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw CLIError.failed("node \(name) was not ready within \(Int(timeout)) s (see \(federation.path(name)))")
    }

    struct LogStatus {
        let leader: String?
        let commitIndex: UInt64
        let appliedIndex: UInt64
    }

    /// `region_log` of `GET /v1/cluster` on `name`, nil if it does not answer.
    func logStatus(_ name: String) async -> LogStatus? {
        guard let response = try? await client.send("GET", "/v1/cluster", to: address(name), headers: headers("serve"),
                                                    timeoutMilliseconds: 1_000), response.status == 200,
              let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
              let log = object["region_log"] as? [String: Any] else { return nil }
        return LogStatus(leader: log["leader"] as? String, commitIndex: (log["commit_index"] as? NSNumber)?.uint64Value ?? 0,
                         appliedIndex: (log["applied_index"] as? NSNumber)?.uint64Value ?? 0)
    }

    /// The region's leader as the running nodes see it (the only node without a log).
    func leader(timeout: Double = 10) async throws -> String {
        guard hasLog else { return names[0] }
        let deadline = Bench.monotonicSeconds() + timeout
        while Bench.monotonicSeconds() < deadline {
            for name in federation.processes.keys.sorted() {
                if let leader = await logStatus(name)?.leader, federation.processes[leader] != nil,
                   await logStatus(leader)?.leader == leader { return leader }
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw CLIError.failed("the region elected no leader within \(Int(timeout)) s")
    }

    /// Waits until `name` has applied `index`; returns the status at each
    /// poll through `observe` (monotonic seconds, applied index).
    func waitApplied(_ name: String, _ index: UInt64, timeout: Double = 60,
                     observe: (Double, UInt64) -> Void = { _, _ in }) async throws {
        let deadline = Bench.monotonicSeconds() + timeout
        while Bench.monotonicSeconds() < deadline {
            if let status = await logStatus(name) {
                observe(Bench.monotonicSeconds(), status.appliedIndex)
                if status.appliedIndex >= index { return }
            }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        throw CLIError.failed("node \(name) did not apply entry \(index) within \(Int(timeout)) s")
    }

    /// Counters from `/metrics` of `name`: group commits, writes they
    /// carried, the region log's proposals and applied entries with their
    /// total latencies.
    struct Counters {
        var commits = 0.0, writes = 0.0, proposals = 0.0, proposalSeconds = 0.0
        /// A follower's entries applied from the log and the time spent.
        var applies = 0.0, applySeconds = 0.0

        static func - (a: Counters, b: Counters) -> Counters {
            Counters(commits: a.commits - b.commits, writes: a.writes - b.writes, proposals: a.proposals - b.proposals,
                     proposalSeconds: a.proposalSeconds - b.proposalSeconds)
        }

        /// "mean batch B, proposal P ms" over a delta.
        var breakdown: String {
            var text = String(format: "batch %5.1f", writes / max(commits, 1))
            if proposals > 0 { text += String(format: "   commit wait %5.2f ms", proposalSeconds * 1_000 / proposals) }
            return text
        }
    }

    func counters(_ name: String) async -> Counters {
        guard let response = try? await client.send("GET", "/metrics", to: address(name), timeoutMilliseconds: 2_000) else { return Counters() }
        var counters = Counters()
        for line in response.text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            switch parts[0] {
            case "domicile_storage_commits_total": counters.commits = value
            case "domicile_storage_committed_writes_total": counters.writes = value
            case "domicile_region_log_proposal_seconds_count": counters.proposals = value
            case "domicile_region_log_proposal_seconds_sum": counters.proposalSeconds = value
            case "domicile_region_log_apply_seconds_count": counters.applies = value
            case "domicile_region_log_apply_seconds_sum": counters.applySeconds = value
            default: break
            }
        }
        return counters
    }

    /// CPU seconds (user + system) used so far by the running nodes, and
    /// by this process (the clients).
    func cpuSeconds() -> (nodes: Double, clients: Double) {
        let nodes = federation.processes.values.reduce(0) { $0 + Self.cpuSeconds(of: "/proc/\($1.pid)/stat") }
        return (nodes, Self.cpuSeconds(of: "/proc/self/stat"))
    }

    /// utime + stime of a `/proc/…/stat`: fields 14 and 15, counted after
    /// the command name's closing parenthesis.
    private static func cpuSeconds(of path: String) -> Double {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func stop() {
        federation.stopAll()
        relay?.stop()
    }
}
