import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// Jepsen-style runs against real `domicile serve` processes: clients on
/// every node register subjects, grant and revoke, write features and
/// vectors, read and search, while a nemesis kills, pauses and cuts off
/// nodes; `RegionChecker` then checks the recorded history and what each
/// node shows at the end. Seeded (DOMICILE_JEPSEN_SEED), the seed printed
/// with the command that replays it. See docs/TESTING.md.
final class RegionJepsenTests: XCTestCase {
    static let schema = RegionSchema(featurePurposes: ["jepsen_recs": "product_recs", "jepsen_mail": "marketing_email"],
                                     collectionPurposes: ["jepsen_items": "product_recs"],
                                     consentPurposes: ["product_recs", "marketing_email"])
    /// Few enough that one search (k = 100) returns every eligible vector.
    static let identifiers = (0..<24).map { "subject\($0)@jepsen.example" }

    static let compactEntries = 100

    /// Whether the built binary has the region log (`cluster init --channel-port`).
    static let hasRegionLog: Bool = {
        guard let help = try? Binary.run(["cluster", "init", "--help"]) else { return false }
        return (help.stdout + help.stderr).contains("--channel-port")
    }()

    static func seed() -> UInt64 {
        UInt64(ProcessInfo.processInfo.environment["DOMICILE_JEPSEN_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64(UInt32.max))
    }

    func test_threeNodeRegion_underKillsPausesAndPartitions_losesNothingAcknowledged_andServesNothingRevoked() async throws {
        try XCTSkipUnless(Self.hasRegionLog, "this binary has no region log (`cluster init --help` lacks --channel-port): "
                          + "a region of three nodes is three stores, so there is nothing to attack yet")
        let seed = Self.seed()
        print("jepsen seed: \(seed) (replay: DOMICILE_JEPSEN_SEED=\(seed) swift test --filter RegionJepsenTests/test_threeNodeRegion)")
        var network: NamespaceNetwork? = nil
        switch NamespaceNetwork.make(nodeCount: 3) {
        case .success(let made): network = made
        case .failure(let why): print("jepsen: no partitions in this run: \(why.description)")
        }
        defer { network?.tearDown() }
        // DOMICILE_JEPSEN_ROUNDS > 1 makes a longer run, DOMICILE_JEPSEN_FAULTS=pauseLeader,… an aimed one (not for CI).
        let rounds = Int(ProcessInfo.processInfo.environment["DOMICILE_JEPSEN_ROUNDS"] ?? "") ?? 1
        var random = SeededRandom(seed: seed)
        let chosen = Nemesis.named(ProcessInfo.processInfo.environment["DOMICILE_JEPSEN_FAULTS"] ?? "")
        let faults = chosen.isEmpty ? Nemesis.rounds(rounds, partitions: network != nil, using: &random) : chosen
        try await run(seed: seed, nodes: 3, regionLog: true, network: network, faults: faults, random: &random)
    }

    /// A region of one node (the log commits locally; before the region
    /// log, a plain node): nothing acknowledged is lost across SIGKILL and SIGSTOP.
    func test_oneNodeRegion_underKillsAndPauses_losesNothingAcknowledged() async throws {
        let seed = Self.seed()
        print("jepsen seed: \(seed) (replay: DOMICILE_JEPSEN_SEED=\(seed) swift test --filter RegionJepsenTests/test_oneNodeRegion)")
        var random = SeededRandom(seed: seed)
        try await run(seed: seed, nodes: 1, regionLog: Self.hasRegionLog, network: nil, faults: [.killLeader, .pauseLeader],
                      random: &random, clientsPerNode: 4)
    }

    // MARK: - A run

    func run(seed: UInt64, nodes count: Int, regionLog: Bool, network: NamespaceNetwork?, faults: [Nemesis.Fault],
             random: inout SeededRandom, clientsPerNode: Int = 2) async throws {
        print("jepsen nemesis: \(faults.map(\.rawValue).joined(separator: "; "))"
              + (network.map { "; partitions by network namespaces and blackhole routes (10.213.x.0/24, \($0.nodeCount) nodes)" } ?? ""))
        // A short log (compacted past 100 entries): a follower restarted a second or two behind gets a snapshot.
        // Over TLS, but in plaintext when network namespaces rewrite the nodes' addresses (the certificates name 127.0.0.1).
        let federation = try FederationFixture(regions: ["eu"], nodesPerRegion: count, gossip: count > 1, regionLog: regionLog,
                                               tls: network == nil) { _, config in
            if var log = config["region_log"] as? [String: Any] {
                log["compact_entries"] = Self.compactEntries
                config["region_log"] = log
            }
        }
        try network?.rewriteAddresses(in: federation)
        let nodes = RegionNodes(federation: federation, network: network)
        defer { nodes.stopAll() }
        try nodes.startAll()
        let client = try RegionClient(nodes: nodes, history: History())
        try await defineSchema(client, on: nodes.names[0])

        let clientSeeds = (0..<count * clientsPerNode).map { _ in random.next() }
        try await Self.runWorkload(clientSeeds: clientSeeds, faults: faults, nemesisSeed: random.next(), client: client, network: network)
        try await settle(client, network: network, regionLog: regionLog, seed: seed)
        let errors = nodes.logLines(containing: "\"level\":\"error\"")
        print("jepsen: \(nodes.logLines(containing: "region log snapshot installed").count) snapshots installed, "
              + "\(errors.count) error log lines" + errors.prefix(5).map { "\n  \($0)" }.joined())
        // A follower's apply never meets a conflict: the log is the only writer of every node's database.
        let applyFailures = nodes.logContext(of: "region log apply failed", before: 8)
        XCTAssertTrue(applyFailures.isEmpty, "seed \(seed): a node stopped applying the region log (with what it logged before):\n"
                      + applyFailures.prefix(18).joined(separator: "\n"))
        for node in nodes.names where regionLog {
            print("jepsen: \(node) region log at the end: \(await client.regionLog(node).map { "\($0)" } ?? "no answer")")
        }
        var finals: [String: NodeState] = [:]
        for node in nodes.names {
            finals[node] = try await client.state(of: node, identifiers: Self.identifiers, schema: Self.schema)
        }
        verify(client.history, finals, seed: seed, report: federation.directory.path + "-jepsen-history.txt")
    }

    /// The clients run until the nemesis has applied every fault.
    static func runWorkload(clientSeeds: [UInt64], faults: [Nemesis.Fault], nemesisSeed: UInt64, client: RegionClient,
                            network: NamespaceNetwork?) async throws {
        let stop = Flag()
        async let workload: Void = clients(seeds: clientSeeds, nodes: client.nodes.names, client: client, registry: Registry(), stop: stop)
        var nemesisError: (any Error)? = nil
        do {
            var random = SeededRandom(seed: nemesisSeed)
            try await Nemesis(client: client, network: network).run(faults, random: &random)
        } catch {
            nemesisError = error
        }
        stop.set()
        await workload
        if let nemesisError { throw nemesisError }
    }

    /// Heals, resumes and restarts every node, then waits for a leader and
    /// for what was in flight to settle on every node.
    func settle(_ client: RegionClient, network: NamespaceNetwork?, regionLog: Bool, seed: UInt64) async throws {
        let nodes = client.nodes
        for node in nodes.names {
            try network?.heal(nodes.index(of: node))
            nodes.resume(node)
            if !nodes.isServing(node) { try nodes.start(node) }
        }
        guard regionLog else { return }
        let leader = await client.leader(seconds: 30)
        XCTAssertNotNil(leader, "no leader after healing (seed \(seed))")
        let converged = await client.awaitConvergence()
        XCTAssertTrue(converged, "the nodes did not converge on one applied index (seed \(seed))")
    }

    /// Checks the run, and that the checker can see it fail; on a violation
    /// (or with DOMICILE_JEPSEN_HISTORY) writes the history and final states to a file.
    func verify(_ history: History, _ finals: [String: NodeState], seed: UInt64, report: String) {
        let entries = history.entries
        let acknowledged = entries.filter { $0.operation.isWrite && $0.completion.isOK }.count
        let reads = entries.filter { !$0.operation.isWrite && $0.completion.isOK }.count
        print("jepsen: \(entries.count) operations, \(acknowledged) acknowledged writes, \(reads) answered reads, "
              + "\(entries.filter { if case .info = $0.completion { return true } else { return false } }.count) indeterminate")
        XCTAssertGreaterThan(acknowledged, 50, "too few acknowledged writes to show anything (seed \(seed))")
        XCTAssertGreaterThan(reads, 20, "too few answered reads to show anything (seed \(seed))")

        let check = { (finals: [String: NodeState]) in
            RegionChecker(schema: Self.schema, entries: entries, partitions: history.partitions, finals: finals).check()
        }
        let violations = check(finals)
        // The checker sees this run: one acknowledged receipt dropped from one node's final state is caught.
        if let (pid, receipt) = Self.anAcknowledgedReceipt(entries), let node = finals.keys.sorted().last {
            var tampered = finals
            tampered[node]?.subjects[pid]?.receipts.removeAll { $0 == receipt }
            XCTAssertTrue(check(tampered).contains { $0.kind == .lostWrite }, "the checker missed a receipt dropped from \(node)'s final state")
        } else {
            XCTFail("no consent receipt was acknowledged (seed \(seed))")
        }

        let kept = ProcessInfo.processInfo.environment["DOMICILE_JEPSEN_HISTORY"]
        let path = kept ?? report
        if !violations.isEmpty || kept != nil {
            let states = finals.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "\n")
            try? (history.render() + "\n\nfinal states:\n" + states + "\n\nviolations:\n" + violations.map(\.description).joined(separator: "\n"))
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
        if !violations.isEmpty {
            XCTFail("seed \(seed): \(violations.count) violations (history in \(path); replay with DOMICILE_JEPSEN_SEED=\(seed)):\n"
                    + violations.prefix(20).map(\.description).joined(separator: "\n"))
        }
    }

    static func anAcknowledgedReceipt(_ entries: [HistoryEntry]) -> (pid: String, receipt: String)? {
        for entry in entries {
            if case .grant(let pid, _) = entry.operation, case .ok(.receipt(let receipt)) = entry.completion { return (pid, receipt) }
        }
        return nil
    }

    func defineSchema(_ client: RegionClient, on node: String) async throws {
        for (feature, purpose) in Self.schema.featurePurposes.sorted(by: { $0.key < $1.key }) {
            try await client.setUp(node, "PUT", "/v1/feature-definitions/\(feature)", role: "admin",
                                   body: ["type": "number", "purpose": purpose, "ttl_seconds": 86_400, "classification": "behavioral"])
        }
        for (collection, purpose) in Self.schema.collectionPurposes.sorted(by: { $0.key < $1.key }) {
            try await client.setUp(node, "PUT", "/v1/collections/\(collection)", role: "admin",
                                   body: ["dimension": 4, "metric": "l2", "purpose": purpose, "index": ["kind": "flat"]])
        }
    }

    // MARK: - Clients

    /// The pids acknowledged so far, shared by the clients.
    actor Registry {
        private var pids: [String] = []

        func add(_ pid: String) { if !pids.contains(pid) { pids.append(pid) } }

        func any(_ draw: UInt64) -> String? { pids.isEmpty ? nil : pids[Int(draw % UInt64(pids.count))] }
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var raised = false

        func set() {
            lock.lock()
            raised = true
            lock.unlock()
        }

        var isSet: Bool {
            lock.lock()
            defer { lock.unlock() }
            return raised
        }
    }

    /// One client per seed, bound to the nodes in turn.
    static func clients(seeds: [UInt64], nodes: [String], client: RegionClient, registry: Registry, stop: Flag) async {
        await withTaskGroup(of: Void.self) { group in
            for (index, seed) in seeds.enumerated() {
                group.addTask {
                    await clientLoop(index: index, clientCount: seeds.count, node: nodes[index % nodes.count], seed: seed,
                                     client: client, registry: registry, stop: stop)
                }
            }
        }
    }

    /// One client, bound to one node, until `stop`: a seeded mix of operations.
    /// Feature values and vector ids are unique over the run (`index + 1 + n · clientCount`).
    static func clientLoop(index: Int, clientCount: Int, node: String, seed: UInt64, client: RegionClient,
                           registry: Registry, stop: Flag) async {
        var random = SeededRandom(seed: seed)
        var written = 0
        func unique() -> Int {
            written += 1
            return index + 1 + written * clientCount
        }
        let features = schema.featurePurposes.keys.sorted()
        let purposes = schema.consentPurposes
        let (collection, collectionPurpose) = schema.collectionPurposes.first!
        while !stop.isSet {
            let roll = Int(random.next() % 100)
            let pick = random.next()
            guard roll >= 12, let pid = await registry.any(random.next()) else {
                let identifier = identifiers[Int(pick % UInt64(identifiers.count))]
                let completion = await client.perform(.register(identifier: identifier), client: "c\(index)", node: node)
                if case .ok(.pid(let pid)) = completion { await registry.add(pid) }
                await backOff(after: completion)
                continue
            }
            let purpose = purposes[Int(pick % UInt64(purposes.count))]
            let operation: RegionOperation
            switch roll {
            case ..<28: operation = .grant(pid: pid, purpose: purpose)
            case ..<38: operation = .revoke(pid: pid, purpose: purpose)
            case ..<56: operation = .writeFeature(pid: pid, feature: features[Int(pick % UInt64(features.count))], value: unique())
            case ..<66: operation = .upsertVector(pid: pid, collection: collection, id: unique())
            case ..<80: operation = .readFeatures(pid: pid, purpose: purpose)
            case ..<90: operation = .readConsent(pid: pid)
            default: operation = .search(collection: collection, purpose: collectionPurpose)
            }
            await backOff(after: await client.perform(operation, client: "c\(index)", node: node))
        }
    }

    /// A node that is down, or without a majority, answers at once: do not
    /// spin on it (it asks for a retry later).
    static func backOff(after completion: RegionCompletion) async {
        switch completion {
        case .ok: return
        case .fail(let status, _) where (400..<500).contains(status): return
        default: try? await Task.sleep(nanoseconds: 100_000_000)
        }
    }
}
