import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// `domicile bench federation`: the federation on real processes (three
/// regions of three nodes on loopback) — the erasure cascade against its
/// floor, and anti-entropy of many releases to a region that was away —
/// and the anti-entropy machine alone in a simulated federation of many
/// regions with message loss.
struct BenchFederationCommand: Command {
    static let path = ["bench", "federation"]
    static let summary = "the erasure cascade and the federation's anti-entropy: real processes, and a simulated federation"
    static let help = """
        [--erasures N] [--releases N] [--sim-regions N] [--sim-runs N] [--dir DIR]

        Three regions of three nodes (each region one region log) on loopback, from this binary:
        - the erasure cascade: N requests (default 10), each made on a node of us for a new subject of eu,
          timed until the origin reports it complete, against its floor: one round trip between regions
          plus the seven durable commits that must follow one another (origin request, intent entry,
          the intent taken, the erasure, the region ack, its entry, the ack taken at the origin), each
          measured as the median acknowledged write of a 3-node region;
        - anti-entropy: with br stopped, N releases (default 10000) are made in eu; br is restarted and timed
          until its first node holds all of them; bytes are the federation's traffic of br's nodes.
        Then the machine alone (DomicileFederation, no processes): --sim-regions regions (default 10) with
        10% message loss, --sim-runs seeded runs (default 20): rounds until every region holds a release,
        and until a cascade from one region completes.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let erasures = try arguments.integer("erasures", default: 10, range: 1...1_000)
        let releases = try arguments.integer("releases", default: 10_000, range: 1...100_000)
        let simRegions = try arguments.integer("sim-regions", default: 10, range: 2...100)
        let simRuns = try arguments.integer("sim-runs", default: 20, range: 1...1_000)
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-federation-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        Output.line("domicile bench federation (\(System.coreCount) cores, loopback)")
        let regions = try ["eu", "us", "br"].map { try RegionID($0) }
        let federation = try LocalFederation(directory: directory, regions: regions, nodesPerRegion: 3)
        try raiseBudgets(federation)
        defer { federation.stopAll() }
        for node in federation.nodeNames { try federation.start(node) }
        try await waitUntilFederated(federation)

        try await cascade(federation, count: erasures)
        try await antiEntropy(federation, releases: releases)
        simulated(regions: simRegions, runs: simRuns)
    }

    /// Budgets no release of the benchmark exhausts, and no access log.
    static func raiseBudgets(_ federation: LocalFederation) throws {
        for node in federation.nodeNames {
            let path = federation.path("\(node)/config.json")
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["privacy_epsilon_per_period"] = 1e9
            config["limits"] = limits
            config["log"] = ["access": false]
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
        }
    }

    static func waitUntilFederated(_ federation: LocalFederation) async throws {
        let ready = await DemoCommand.waitUntil(seconds: 60) {
            for node in federation.nodeNames {
                guard let view = try? await federation.call(node, "GET", "/v1/cluster", role: "admin"),
                      let members = (view.json["pools"] as? [String: Any])?["federation"] as? [[String: Any]],
                      members.filter({ $0["status"] as? String == "alive" }).count == federation.nodeNames.count,
                      (try? await federation.call(node, "GET", "/readyz", role: "admin"))?.status == 200 else { return false }
            }
            return true
        }
        guard ready else { throw CLIError.failed("the federation did not converge in 60 s") }
    }

    // MARK: The cascade

    static func cascade(_ federation: LocalFederation, count: Int) async throws {
        // The floor's parts: a round trip to another region's node, and a durable write of a 3-node region.
        var trips: [Double] = []
        for _ in 0..<50 {
            let started = Bench.monotonicSeconds()
            _ = try await federation.call("br-1", "GET", "/healthz", role: "admin")
            trips.append(Bench.monotonicSeconds() - started)
        }
        let subject = try await register(federation, "floor@example.com", on: "eu-1", country: "DE")
        var commits: [Double] = []
        for index in 0..<50 {
            let started = Bench.monotonicSeconds()
            let written = try await federation.call("eu-1", "POST", "/v1/subjects/\(subject)/consents", role: "ingest", json: """
                {"action":"\(index % 2 == 0 ? "grant" : "revoke")","purposes":["analytics"],"source":"bench","collected_at":"2026-01-01T00:00:00Z"}
                """)
            guard written.status == 201 else { throw CLIError.failed("a consent write failed: \(written.status)") }
            commits.append(Bench.monotonicSeconds() - started)
        }
        let trip = median(trips), commit = median(commits)
        let floor = trip + 7 * commit

        var durations: [Double] = []
        for index in 0..<count {
            let pid = try await register(federation, "cascade-\(index)@example.com", on: "eu-2", country: "DE")
            let started = Bench.monotonicSeconds()
            let requested = try await federation.call("us-1", "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(pid)"}"#)
            guard requested.status == 202, let id = requested.json["erasure_id"] as? String else {
                throw CLIError.failed("an erasure was refused: \(requested.status) \(requested.code)")
            }
            var complete = requested.json["status"] as? String == "complete"
            while !complete, Bench.monotonicSeconds() - started < 60 {
                try await Task.sleep(nanoseconds: 2_000_000)
                complete = (try? await federation.call("us-1", "GET", "/v1/erasures/\(id)", role: "privacy_officer"))?
                    .json["status"] as? String == "complete"
            }
            guard complete else { throw CLIError.failed("erasure \(id) did not complete in 60 s") }
            durations.append(Bench.monotonicSeconds() - started)
        }
        let sorted = durations.sorted()
        Output.line("erasure cascade, 3 regions × 3 nodes: \(count) requests made in us for eu subjects, each until complete")
        Output.line(String(format: "  completion: median %.1f ms, max %.1f ms", median(durations) * 1_000, sorted.last! * 1_000))
        Output.line(String(format: "  floor %.1f ms = round trip %.2f ms + 7 × durable write %.2f ms: median / floor = %.1f",
                           floor * 1_000, trip * 1_000, commit * 1_000, median(durations) / floor))
    }

    static func register(_ federation: LocalFederation, _ email: String, on node: String, country: String) async throws -> String {
        let reply = try await federation.call(node, "POST", "/v1/subjects", role: "ingest",
                                              json: #"{"identifier":{"kind":"email","value":"\#(email)"},"country":"\#(country)"}"#)
        guard let pid = reply.json["pid"] as? String else { throw CLIError.failed("registration failed: \(reply.status) \(reply.code)") }
        return pid
    }

    // MARK: Anti-entropy

    static func antiEntropy(_ federation: LocalFederation, releases: Int) async throws {
        let away = ["br-1", "br-2", "br-3"]
        for node in away { federation.kill(node) }
        let started = Bench.monotonicSeconds()
        let caller = federation.caller
        let clients = 16
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    for index in stride(from: client, to: releases, by: clients) {
                        let released = try await caller.call(["eu-1", "eu-2", "eu-3"][index % 3], "POST", "/v1/aggregates", role: "analyst",
                                                             json: #"{"name":"bench_\#(index % 100)","kind":"count","epsilon":1}"#)
                        guard released.status == 201 else { throw CLIError.failed("a release failed: \(released.status) \(released.code)") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let made = Bench.monotonicSeconds() - started
        for node in away { try federation.start(node) }
        let restarted = Bench.monotonicSeconds()
        let database = try Database(path: federation.path("br-1/data/node.sqlite"))
        var held = 0
        while held < releases, Bench.monotonicSeconds() - restarted < 600 {
            held = Int((try? database.fetchOne("SELECT count(*) FROM aggregate_releases WHERE region = 'eu'") { $0.int64(0) }) ?? 0)
            if held < releases { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        let seconds = Bench.monotonicSeconds() - restarted
        var bytes = 0.0
        for node in away {
            guard let address = federation.addresses[node] else { continue }
            let metrics = try await federation.client.send("GET", "/metrics", to: address)
            bytes += federationBytes(String(decoding: metrics.body, as: UTF8.self))
        }
        Output.line("anti-entropy: \(releases) releases made in eu in \(String(format: "%.1f", made)) s while br was stopped; br restarted")
        Output.line(String(format: "  br-1 held all %d after %.2f s (%.0f releases/s); br's nodes exchanged %.1f MB (%.0f bytes per release)",
                           held, seconds, Double(held) / seconds, bytes / 1e6, bytes / Double(max(1, held))))
    }

    /// The sum of `domicile_federation_bytes_total` in a /metrics text.
    static func federationBytes(_ metrics: String) -> Double {
        metrics.split(separator: "\n").filter { $0.hasPrefix("domicile_federation_bytes_total") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    // MARK: The machine alone

    /// Regions as one machine each, exchanging through a queue that loses
    /// 10% of messages and delivers the rest the next round; a release and
    /// an erasure intent published by region 0 at round 0. Rounds until
    /// every region holds the release, and until region 0 holds every
    /// region's ack, its own included (each region acks as soon as it holds
    /// the intent).
    static func simulated(regions count: Int, runs: Int) {
        var releaseRounds: [Double] = []
        var cascadeRounds: [Double] = []
        for seed in 0..<UInt64(runs) {
            guard let (release, cascade) = try? simulate(regions: count, seed: seed) else { continue }
            releaseRounds.append(Double(release))
            cascadeRounds.append(Double(cascade))
        }
        let settings = FederationSettings()
        let seconds = 0.5  // a node's federation round (FederationSync.tickMilliseconds)
        Output.line("simulated federation: \(count) regions, 10% loss, \(runs) seeded runs, a digest to one random peer every "
                    + "\(settings.exchangeTicks) rounds (and to every peer when a region publishes)")
        guard !releaseRounds.isEmpty else { return Output.line("  no run completed") }
        Output.line(String(format: "  every region holds a release: median %.0f rounds (%.1f s at %.1f s a round), max %.0f",
                           median(releaseRounds), median(releaseRounds) * seconds, seconds, releaseRounds.max()!))
        Output.line(String(format: "  a cascade completes at its origin: median %.0f rounds (%.1f s), max %.0f",
                           median(cascadeRounds), median(cascadeRounds) * seconds, cascadeRounds.max()!))
    }

    static func simulate(regions count: Int, seed: UInt64) throws -> (release: Int, cascade: Int) {
        var random = SeededRandom(seed: seed)
        let ids = try (0..<count).map { try RegionID("r\($0)") }
        let key = try Ed25519PrivateKey(seed: [UInt8](repeating: 7, count: 32))
        var nodes = try ids.map { try FederationNode(region: $0, peers: ids, settings: FederationSettings(), transfer: .everything,
                                                      randomSeed: random.next()) }
        func minted(_ kind: IDKind) -> String { kind.id(randomBytes: (0..<IDKind.randomByteCount).map { _ in UInt8.random(in: 0...255, using: &random) }) }
        let release = try AggregateRelease(releaseID: minted(.release), name: try Name("visits", what: "aggregate"), region: ids[0],
                                           kind: try Name("count", what: "kind"), dataset: try Name("default", what: "dataset"),
                                           result: .value(42), mechanism: try Name("laplace", what: "mechanism"), epsilon: 1, delta: 0,
                                           noiseScale: 1.4, releasedAt: Timestamp(milliseconds: 0), policyVersion: 1)
        let request = SignedErasureRequest.signed(
            erasureID: minted(.erasure), requestedAt: Timestamp(milliseconds: 0), dueAt: Timestamp(milliseconds: 86_400_000),
            jurisdiction: "gdpr", originRegion: ids[0], originNode: "r0-1", policyVersion: 1, linkHash: [UInt8](repeating: 1, count: 32),
            expectedNodes: Dictionary(uniqueKeysWithValues: ids.map { ($0, ["\($0)-1"]) }), key: key)
        let intent = try ErasureIntent(request: request, erasedPids: [])
        _ = try nodes[0].publish(.aggregate(release))
        _ = try nodes[0].publish(.erasureIntent(intent))
        for peer in ids.dropFirst() { nodes[0].exchange(with: peer) }
        var inFlight: [FederationEnvelope] = []
        var releaseDone: Int?
        var acked = Set<Int>()
        for round in 1...10_000 {
            for envelope in inFlight { nodes[ids.firstIndex(of: envelope.to)!].step(envelope) }
            inFlight = []
            for index in nodes.indices {
                // Each region acks the intent as soon as it holds it (its erasure is not what is measured here).
                if !acked.contains(index), nodes[index].intentsAwaitingAck.contains(where: { $0.erasureID == intent.erasureID }) {
                    let ack = ErasureAck.signed(for: request, region: ids[index], node: "\(ids[index])-1", scope: .region,
                                                erasedAt: Timestamp(milliseconds: 0), counts: ["subjects": 0], walTruncated: true,
                                                policyVersion: 1, key: key)
                    _ = try nodes[index].publish(.erasureAck(ack))
                    for peer in ids where peer != ids[index] { nodes[index].exchange(with: peer) }
                    acked.insert(index)
                }
                nodes[index].tick()
                while nodes[index].hasReady {
                    for envelope in nodes[index].ready().messages where Double.random(in: 0..<1, using: &random) >= 0.1 {
                        inFlight.append(envelope)
                    }
                }
            }
            if releaseDone == nil, nodes.allSatisfy({ $0.releases[release.releaseID] != nil }) { releaseDone = round }
            if let releaseDone, nodes[0].progress(of: intent.erasureID)?.isComplete == true { return (releaseDone, round) }
        }
        throw CLIError.failed("the simulated federation did not converge in 10000 rounds")
    }
}
