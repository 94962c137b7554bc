import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// A Jepsen-style run against the federation: three regions of three
/// `domicile serve` processes. Clients in every region register subjects,
/// grant and revoke, write vectors (exported as noised copies to the other
/// regions), ask for erasures of any region's subjects on nodes of another
/// region, poll them, and search federated (from replicas and fresh), while
/// a nemesis SIGKILLs and SIGSTOPs region leaders and followers and takes
/// whole regions down. After healing, the checker reads the history and what
/// every node shows:
///
/// - every acknowledged erasure completes, with one signed ack per region;
/// - an erased subject is gone from every node of its home region and from
///   every search on every node, and no search that began after a client
///   saw its erasure complete found it;
/// - no fresh answer (local or remote) found a subject whose revoke was
///   acknowledged before the search began, with no grant racing it;
/// - the regions' replicas converge: every node outside a region holds the
///   same copies of it, and only of subjects eligible in their home region.
///
/// Seeded (DOMICILE_FEDERATION_JEPSEN_SEED); the seed is printed with the
/// command that replays the same workload and faults.
final class FederationJepsenTests: XCTestCase {
    static let regions = ["eu": "DE", "us": "US", "br": "BR"]
    static let collection = "jepsen_taste"
    static let purpose = "product_recs"
    static let dimension = 4
    /// Six clients register at most this many subjects each, so one search
    /// (`k` at its limit, 100) returns every subject of every region.
    static let subjectsPerClient = 12
    /// What one export charges its subject (the per-period limit, 16 by default, allows four).
    static let exportEpsilon = 4.0
    static let exportDelta = 1e-6
    static let searchResults = 100

    static func seed() -> UInt64 {
        UInt64(ProcessInfo.processInfo.environment["DOMICILE_FEDERATION_JEPSEN_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64(UInt32.max))
    }

    func test_threeRegions_underKillsPausesAndRegionOutages_eraseEverywhere_andConverge() async throws {
        try XCTSkipUnless(RegionJepsenTests.hasRegionLog, "this binary has no region log: there is no federation of regions to attack")
        let seed = Self.seed()
        print("federation jepsen seed: \(seed) (replay: DOMICILE_FEDERATION_JEPSEN_SEED=\(seed) swift test --filter FederationJepsenTests)")
        var random = SeededRandom(seed: seed)
        let federation = try FederationFixture(regions: ["eu", "us", "br"], nodesPerRegion: 3, gossip: true, regionLog: true)
        let nodes = RegionNodes(federation: federation, network: nil)
        defer { nodes.stopAll() }
        try nodes.startAll()
        let client = try FederationClient(nodes: nodes)
        try await client.awaitFederated()
        try await defineCollection(client)

        let faults = FederationNemesis.Fault.allCases.shuffled(using: &random)
        print("federation jepsen nemesis: " + faults.map(\.rawValue).joined(separator: "; "))
        let stop = RegionJepsenTests.Flag()
        let registry = Registry()
        let clientSeeds = (0..<6).map { _ in random.next() }
        async let workload: Void = Self.clients(seeds: clientSeeds, client: client, registry: registry, stop: stop)
        var nemesisRandom = SeededRandom(seed: random.next())
        do {
            try await FederationNemesis(client: client).run(faults, random: &nemesisRandom)
        } catch {
            stop.set()
            await workload
            throw error
        }
        stop.set()
        await workload

        try await settle(client, seed: seed)
        let erasures = await registry.erasures
        let completed = await awaitErasures(erasures, client: client, seed: seed)
        let finals = try await finalState(client, registry: registry)
        verify(client.entries, erasures: erasures, completed: completed, finals: finals, seed: seed,
               report: federation.directory.path + "-federation-jepsen-history.txt")
    }

    // MARK: - Set-up and settling

    func defineCollection(_ client: FederationClient) async throws {
        for region in Self.regions.keys.sorted() {
            try await client.setUp("\(region)-1", "PUT", "/v1/collections/\(Self.collection)", role: "admin", body: [
                "dimension": Self.dimension, "metric": "l2", "purpose": Self.purpose, "index": ["kind": "flat"],
                "export": ["epsilon": Self.exportEpsilon, "delta": Self.exportDelta, "clip_norm": 4],
            ])
        }
    }

    /// Resumes and restarts every node, then waits for a leader in every region.
    func settle(_ client: FederationClient, seed: UInt64) async throws {
        let nodes = client.nodes
        for node in nodes.names {
            nodes.resume(node)
            if !nodes.isServing(node) { try nodes.start(node) }
        }
        for region in Self.regions.keys.sorted() {
            let leader = await client.leader(of: region, seconds: 40)
            XCTAssertNotNil(leader, "seed \(seed): no leader in \(region) after healing")
        }
    }

    /// Polls every acknowledged erasure on a node of its origin region until
    /// it completes (at most 120 s in all); returns the completed states by id.
    func awaitErasures(_ erasures: [Erasure], client: FederationClient, seed: UInt64) async -> [String: [String: Any]] {
        var completed: [String: [String: Any]] = [:]
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, completed.count < erasures.count {
            for erasure in erasures where completed[erasure.id] == nil {
                for index in 1...3 {
                    if case .answer(200, let json, _) = await client.call("\(erasure.origin)-\(index)", "GET", "/v1/erasures/\(erasure.id)",
                                                                          role: "privacy_officer"),
                       json["certificate"] != nil, json["status"] as? String == "complete" {
                        completed[erasure.id] = json
                        break
                    }
                }
            }
            if completed.count < erasures.count { try? await Task.sleep(nanoseconds: 500_000_000) }
        }
        return completed
    }

    /// What the nodes show once settled: each region's eligible subjects (its
    /// own exact search), what every node holds of the other regions
    /// (replica search), and the erased subjects' reads in their home region.
    struct FinalState {
        /// Per region, the pids its own nodes find (exact, eligible now), per node.
        var local: [String: [String: Set<String>]] = [:]
        /// Per node, per source region, the pids of the copies it holds.
        var replicas: [String: [String: Set<String>]] = [:]
        /// Per node, every pid any search on it found at the end (local, replica and fresh).
        var found: [String: Set<String>] = [:]
        /// Per erased pid, the statuses of `GET /v1/subjects/{pid}` on its home region's nodes.
        var erasedReads: [String: [Int]] = [:]
        /// Per region, eligible subjects some node of another region does not
        /// hold, though their budget still had room for an export (so none of
        /// their versions was refused this period).
        var unreplicated: [String: Set<String>] = [:]
    }

    /// Reads the final state, waiting (up to 60 s) for the replicas to converge.
    func finalState(_ client: FederationClient, registry: Registry) async throws -> FinalState {
        var state = FinalState()
        let deadline = Date().addingTimeInterval(60)
        repeat {
            state = FinalState()
            for node in client.nodes.names {
                let home = FederationClient.region(of: node)
                let answer = try await client.search(node, fresh: false)
                state.local[home, default: [:]][node] = Set(answer.filter { $0.source == "local" }.map(\.pid))
                for other in Self.regions.keys where other != home {
                    state.replicas[node, default: [:]][other] = Set(answer.filter { $0.source == "replica" && $0.region == other }.map(\.pid))
                }
                state.found[node] = Set(answer.map(\.pid))
            }
            state.unreplicated = try await unreplicated(state, client: client)
            if Self.replicasConverged(state), state.unreplicated.values.allSatisfy(\.isEmpty) { break }
            try await Task.sleep(nanoseconds: 1_000_000_000)
        } while Date() < deadline
        for node in client.nodes.names {
            let fresh = try await client.search(node, fresh: true)
            state.found[node, default: []].formUnion(fresh.map(\.pid))
        }
        // A subject may have been asked to be erased more than once.
        for erasure in await registry.erasures where state.erasedReads[erasure.pid] == nil {
            for index in 1...3 {
                if case .answer(let status, _, _) = await client.call("\(erasure.home)-\(index)", "GET", "/v1/subjects/\(erasure.pid)", role: "serve") {
                    state.erasedReads[erasure.pid, default: []].append(status)
                }
            }
        }
        return state
    }

    /// The eligible subjects of each region that a node of another region
    /// does not hold, among those whose embedding budget (read on their home
    /// region) still has room for one more export.
    func unreplicated(_ state: FinalState, client: FederationClient) async throws -> [String: Set<String>] {
        var missing: [String: Set<String>] = [:]
        for (region, views) in state.local {
            let eligible = views.values.first ?? []
            let heldEverywhere = state.replicas.filter { FederationClient.region(of: $0.key) != region }
                .map { $0.value[region] ?? [] }.reduce(eligible) { $0.intersection($1) }
            for pid in eligible.subtracting(heldEverywhere).sorted() {
                guard case .answer(200, let json, _) = await client.call("\(region)-1", "GET", "/v1/privacy-budget?pid=\(pid)",
                                                                         role: "privacy_officer") else { continue }
                let remaining = ((json["embeddings"] as? [String: Any])?["subject"] as? [String: Any])?["remaining"] as? [String: Any]
                if let epsilon = remaining?["epsilon"] as? Double, let delta = remaining?["delta"] as? Double,
                   epsilon >= Self.exportEpsilon, delta >= Self.exportDelta {
                    missing[region, default: []].insert(pid)
                }
            }
        }
        return missing
    }

    /// Every node outside a region holds the same copies of it, each of a
    /// subject its home region finds eligible, and every node of a region
    /// finds the same subjects.
    static func replicasConverged(_ state: FinalState) -> Bool {
        for (region, views) in state.local {
            guard Set(views.values).count == 1, let eligible = views.values.first else { return false }
            let held = state.replicas.filter { FederationClient.region(of: $0.key) != region }.map { $0.value[region] ?? [] }
            guard Set(held).count == 1, held.first!.isSubset(of: eligible) else { return false }
        }
        return true
    }

    // MARK: - The checker

    func verify(_ entries: [FederationEntry], erasures: [Erasure], completed: [String: [String: Any]], finals: FinalState,
                seed: UInt64, report: String) {
        var violations: [String] = []
        let searches = entries.filter { if case .search = $0.operation { return $0.hits != nil } else { return false } }
        let acknowledged = entries.filter(\.acknowledged)
        print("federation jepsen: \(entries.count) operations, \(acknowledged.count) acknowledged, \(searches.count) searches answered, "
              + "\(erasures.count) erasures acknowledged, \(completed.count) completed; "
              + "at the end, eligible in their region / held by the two others: " + finals.local.keys.sorted().map { region in
                  let held = finals.replicas.filter { FederationClient.region(of: $0.key) != region }.map { $0.value[region]?.count ?? 0 }
                  return "\(region) \(finals.local[region]?.values.first?.count ?? 0) / \(Set(held).sorted())"
              }.joined(separator: ", "))
        XCTAssertGreaterThan(acknowledged.count, 40, "too few acknowledged operations to show anything (seed \(seed))")
        XCTAssertGreaterThan(searches.count, 20, "too few answered searches to show anything (seed \(seed))")
        XCTAssertFalse(erasures.isEmpty, "no erasure was acknowledged (seed \(seed))")
        XCTAssertTrue(finals.replicas.values.contains { $0.values.contains { !$0.isEmpty } }, "no region held a copy of another's subjects (seed \(seed))")

        // Nothing acknowledged is lost: every erasure completes, acked by every region.
        for erasure in erasures {
            guard let state = completed[erasure.id] else {
                violations.append("lost erasure: \(erasure.id) of \(erasure.pid) (asked in \(erasure.origin)) never completed")
                continue
            }
            let acks = ((state["certificate"] as? [String: Any])?["acks"] as? [[String: Any]]) ?? []
            let regions = Set(acks.compactMap { $0["region"] as? String })
            if regions != Set(Self.regions.keys) {
                violations.append("erasure \(erasure.id) completed with acks from \(regions.sorted()) only")
            }
        }
        // An erased subject is gone from its home region and from every search on every node.
        for erasure in erasures where completed[erasure.id] != nil && !violations.contains(where: { $0.hasPrefix("erased \(erasure.pid):") }) {
            let reads = finals.erasedReads[erasure.pid] ?? []
            if reads.count != 3 || reads.contains(where: { $0 != 404 }) {
                violations.append("erased \(erasure.pid): its home region \(erasure.home) answered \(reads) to reads of it")
            }
            for (node, found) in finals.found.sorted(by: { $0.key < $1.key }) where found.contains(erasure.pid) {
                violations.append("erased \(erasure.pid): still found by a search on \(node) at the end")
            }
        }
        violations += Self.erasedFoundAfterCompletion(entries)
        violations += Self.revokedFoundFresh(entries)

        for (region, pids) in finals.unreplicated.sorted(by: { $0.key < $1.key }) where !pids.isEmpty {
            violations.append("\(region): \(pids.count) eligible subjects with budget left are not held by every other region: \(pids.sorted())")
        }
        // The replicas converged (the final state waited for it).
        if !Self.replicasConverged(finals) {
            violations.append("replicas did not converge: local \(finals.local.mapValues { $0.mapValues(\.count) }), "
                              + "held \(finals.replicas.mapValues { $0.mapValues(\.count) })")
        }

        // The checker can fail: a search that found an erased subject after its completion is caught.
        if let seen = entries.first(where: { if case .status = $0.operation { return $0.completedErasure } else { return false } }),
           case .status(_, let pid) = seen.operation {
            var tampered = entries
            tampered.append(FederationEntry(client: "tamper", node: "eu-1", operation: .search(fresh: true),
                                            invoked: seen.completed + 1, completed: seen.completed + 2, acknowledged: true,
                                            hits: [Hit(pid: pid, region: "eu", source: "remote")]))
            XCTAssertFalse(Self.erasedFoundAfterCompletion(tampered).isEmpty, "the checker missed an erased subject found after completion")
        }

        if !violations.isEmpty || ProcessInfo.processInfo.environment["DOMICILE_JEPSEN_HISTORY"] != nil {
            let text = entries.map(\.description).joined(separator: "\n") + "\n\nviolations:\n" + violations.joined(separator: "\n")
            try? text.write(toFile: report, atomically: true, encoding: .utf8)
        }
        if !violations.isEmpty {
            XCTFail("seed \(seed): \(violations.count) violations (history in \(report); replay with DOMICILE_FEDERATION_JEPSEN_SEED=\(seed)):\n"
                    + violations.prefix(20).joined(separator: "\n"))
        }
    }

    /// Searches that began after a client saw an erasure of a subject
    /// complete, and still found the subject.
    static func erasedFoundAfterCompletion(_ entries: [FederationEntry]) -> [String] {
        var completedAt: [String: Double] = [:]
        for entry in entries where entry.completedErasure {
            if case .status(_, let pid) = entry.operation { completedAt[pid] = min(completedAt[pid] ?? .infinity, entry.completed) }
        }
        return entries.flatMap { entry -> [String] in
            guard case .search = entry.operation, let hits = entry.hits else { return [] }
            return hits.compactMap { hit in
                guard let done = completedAt[hit.pid], entry.invoked > done else { return nil }
                return "erased \(hit.pid) (seen complete at \(done)) found \(hit.source) by \(entry.summary)"
            }
        }
    }

    /// Fresh answers (local or remote) that found a subject whose revoke was
    /// acknowledged before the search began, with no grant of it that could
    /// have taken effect after the revoke and before the search ended.
    static func revokedFoundFresh(_ entries: [FederationEntry]) -> [String] {
        let revokes = entries.filter { if case .revoke = $0.operation { return $0.acknowledged } else { return false } }
        let grants = entries.filter { if case .grant = $0.operation { return true } else { return false } }
        return entries.flatMap { search -> [String] in
            guard case .search(fresh: true) = search.operation, let hits = search.hits else { return [] }
            return hits.filter { $0.source != "replica" }.compactMap { hit in
                for revoke in revokes where revoke.operation.pid == hit.pid && revoke.completed < search.invoked {
                    // A grant that may have been ordered after the revoke, in time for the search.
                    let racing = grants.contains { grant in
                        grant.operation.pid == hit.pid && grant.invoked < search.completed
                            && (grant.acknowledged ? grant.completed : .infinity) > revoke.invoked
                    }
                    if !racing { return "revoked \(hit.pid) (acknowledged at \(revoke.completed)) found \(hit.source) by \(search.summary)" }
                }
                return nil
            }
        }
    }

    // MARK: - Clients

    struct Erasure: Sendable {
        let id: String
        let pid: String
        let home: String
        /// The region of the node that acknowledged the request.
        let origin: String
    }

    actor Registry {
        private(set) var pids: [String: [String]] = [:]
        private(set) var erasures: [Erasure] = []
        private var erased: Set<String> = []

        func add(_ pid: String, in region: String) { pids[region, default: []].append(pid) }

        func any(in region: String, _ draw: UInt64) -> String? {
            let live = (pids[region] ?? []).filter { !erased.contains($0) }
            return live.isEmpty ? nil : live[Int(draw % UInt64(live.count))]
        }

        func anyOtherRegion(than region: String, _ draw: UInt64) -> (pid: String, home: String)? {
            let candidates = pids.filter { $0.key != region }.flatMap { home, pids in pids.filter { !erased.contains($0) }.map { ($0, home) } }
                .sorted { $0.0 < $1.0 }
            return candidates.isEmpty ? nil : candidates[Int(draw % UInt64(candidates.count))]
        }

        func asked(_ erasure: Erasure) {
            erasures.append(erasure)
            erased.insert(erasure.pid)
        }

        func anyErasure(_ draw: UInt64) -> Erasure? { erasures.isEmpty ? nil : erasures[Int(draw % UInt64(erasures.count))] }
    }

    /// Two clients per region, each bound to one node of it.
    static func clients(seeds: [UInt64], client: FederationClient, registry: Registry, stop: RegionJepsenTests.Flag) async {
        let regions = Self.regions.keys.sorted()
        await withTaskGroup(of: Void.self) { group in
            for (index, seed) in seeds.enumerated() {
                let region = regions[index % regions.count]
                let node = "\(region)-\(index / regions.count % 3 + 1)"
                group.addTask { await clientLoop(index: index, node: node, seed: seed, client: client, registry: registry, stop: stop) }
            }
        }
    }

    static func clientLoop(index: Int, node: String, seed: UInt64, client: FederationClient, registry: Registry,
                           stop: RegionJepsenTests.Flag) async {
        var random = SeededRandom(seed: seed)
        let region = FederationClient.region(of: node)
        var registered = 0
        while !stop.isSet {
            let roll = Int(random.next() % 100)
            let draw = random.next()
            let operation: FederationOperation
            if (roll < 12 && registered < Self.subjectsPerClient) || (roll < 60 && registered < 2) {
                registered += 1
                operation = .register(identifier: "fj-\(index)-\(registered)@jepsen.example", country: Self.regions[region]!)
            } else if roll < 60, let pid = await registry.any(in: region, draw) {
                switch roll {
                case ..<28: operation = .grant(pid: pid)
                case ..<36: operation = .revoke(pid: pid)
                default: operation = .vector(pid: pid, values: (0..<dimension).map { _ in Double(random.next() % 2_000) / 1_000 - 1 })
                }
            } else if roll < 61, let (pid, home) = await registry.anyOtherRegion(than: region, draw) {
                operation = .erase(pid: pid, home: home)
            } else if roll < 71, let erasure = await registry.anyErasure(draw) {
                operation = .status(id: erasure.id, pid: erasure.pid)
            } else {
                operation = .search(fresh: roll % 2 == 0)
            }
            let entry = await client.perform(operation, client: "c\(index)", node: node)
            switch (operation, entry.value) {
            case (.register, .some(let pid)): await registry.add(pid, in: region)
            case (.erase(let pid, let home), .some(let id)): await registry.asked(Erasure(id: id, pid: pid, home: home, origin: region))
            default: break
            }
            if !entry.acknowledged && entry.hits == nil { try? await Task.sleep(nanoseconds: 100_000_000) }
        }
    }
}

// MARK: - History

enum FederationOperation: Sendable, CustomStringConvertible {
    case register(identifier: String, country: String)
    case grant(pid: String)
    case revoke(pid: String)
    case vector(pid: String, values: [Double])
    case erase(pid: String, home: String)
    case status(id: String, pid: String)
    case search(fresh: Bool)
    /// What the nemesis did, in the history's order.
    case note(String)

    var pid: String? {
        switch self {
        case .grant(let pid), .revoke(let pid), .vector(let pid, _), .erase(let pid, _), .status(_, let pid): return pid
        case .register, .search, .note: return nil
        }
    }

    var description: String {
        switch self {
        case .register(let identifier, let country): return "register \(identifier) (\(country))"
        case .grant(let pid): return "grant \(pid)"
        case .revoke(let pid): return "revoke \(pid)"
        case .vector(let pid, _): return "vector \(pid)"
        case .erase(let pid, let home): return "erase \(pid) of \(home)"
        case .status(let id, let pid): return "status \(id) of \(pid)"
        case .search(let fresh): return fresh ? "search fresh" : "search replicas"
        case .note(let text): return text
        }
    }
}

struct Hit: Sendable, Hashable {
    let pid: String
    let region: String
    let source: String
}

struct FederationEntry: Sendable, CustomStringConvertible {
    let client: String
    let node: String
    let operation: FederationOperation
    /// Seconds since the run began.
    let invoked: Double
    let completed: Double
    /// A write answered with success (or a read answered).
    let acknowledged: Bool
    /// What a search found.
    var hits: [Hit]? = nil
    /// A new pid, or an erasure's id.
    var value: String? = nil
    /// A status read that saw its erasure complete in every region.
    var completedErasure = false
    var outcome = ""

    /// The operation, where and when, without what it returned.
    var summary: String { String(format: "%.3f–%.3f ", invoked, completed) + "\(client)@\(node) \(operation)" }

    var description: String {
        String(format: "%8.3f–%8.3f ", invoked, completed) + "\(client)@\(node) \(operation) → "
            + (acknowledged ? "ok" : "not ok") + (value.map { " \($0)" } ?? "") + (completedErasure ? " complete" : "")
            + (hits.map { " hits \($0.map { "\($0.pid)/\($0.source)" }.sorted())" } ?? "") + (outcome.isEmpty ? "" : " (\(outcome))")
    }
}

/// Calls the federation's nodes for the run (through `RegionClient`'s calls,
/// over TLS when the layout has a CA), recording each operation.
final class FederationClient: Sendable {
    let nodes: RegionNodes
    private let calls: RegionClient
    private let started = Date()
    private let recorded = Locked<[FederationEntry]>([])

    init(nodes: RegionNodes) throws {
        self.nodes = nodes
        calls = try RegionClient(nodes: nodes, history: History())
    }

    /// Every operation recorded so far.
    var entries: [FederationEntry] { recorded.withLock { $0 } }

    static func region(of node: String) -> String { String(node.prefix { $0 != "-" }) }

    func call(_ node: String, _ method: String, _ path: String, role: String?, body: Any? = nil) async -> RegionClient.Reply {
        await calls.call(node, method, path, role: role, body: body)
    }

    private var now: Double { Date().timeIntervalSince(started) }

    /// Runs `operation` on `node` and records it.
    @discardableResult
    func perform(_ operation: FederationOperation, client: String, node: String) async -> FederationEntry {
        let invoked = now
        let (method, path, role, body) = Self.request(for: operation)
        let reply = await call(node, method, path, role: role, body: body)
        var entry: FederationEntry
        switch reply {
        case .answer(let status, let json, _) where (200..<300).contains(status):
            entry = FederationEntry(client: client, node: node, operation: operation, invoked: invoked, completed: now, acknowledged: true)
            switch operation {
            case .register: entry.value = json["pid"] as? String
            case .erase: entry.value = json["erasure_id"] as? String
            // Complete everywhere: the origin region's nodes answer with the
            // certificate; another region's copy says complete once that region erased.
            case .status: entry.completedErasure = json["status"] as? String == "complete" && json["certificate"] != nil
            case .search: entry.hits = Self.hits(json)
            default: break
            }
        case .answer(let status, let json, _):
            entry = FederationEntry(client: client, node: node, operation: operation, invoked: invoked, completed: now, acknowledged: false,
                                    outcome: "\(status) \(json["code"] as? String ?? "")")
        case .notSent(let why), .lost(let why):
            entry = FederationEntry(client: client, node: node, operation: operation, invoked: invoked, completed: now, acknowledged: false,
                                    outcome: why)
        }
        let recordedEntry = entry
        recorded.withLock { $0.append(recordedEntry) }
        return entry
    }

    static func request(for operation: FederationOperation) -> (String, String, String, Any?) {
        let collection = FederationJepsenTests.collection, purpose = FederationJepsenTests.purpose
        func consent(_ action: String) -> [String: Any] {
            ["action": action, "purposes": [purpose], "source": "test:jepsen", "collected_at": ISO8601DateFormatter().string(from: Date())]
        }
        switch operation {
        case .register(let identifier, let country):
            return ("POST", "/v1/subjects", "ingest", ["identifier": ["kind": "email", "value": identifier], "country": country])
        case .grant(let pid): return ("POST", "/v1/subjects/\(pid)/consents", "ingest", consent("grant"))
        case .revoke(let pid): return ("POST", "/v1/subjects/\(pid)/consents", "ingest", consent("revoke"))
        case .vector(let pid, let values): return ("PUT", "/v1/collections/\(collection)/vectors/\(pid)", "ingest", ["vector": values])
        case .erase(let pid, _): return ("POST", "/v1/erasures", "privacy_officer", ["pid": pid])
        case .status(let id, _): return ("GET", "/v1/erasures/\(id)", "privacy_officer", nil)
        case .note: preconditionFailure("a note is not a request")
        case .search(let fresh):
            return ("POST", "/v1/collections/\(collection)/search", "serve", [
                "vector": Array(repeating: 0.0, count: FederationJepsenTests.dimension), "k": FederationJepsenTests.searchResults, "purpose": purpose,
                "scope": "federated", "fresh": fresh, "deadline_ms": 2_000,
            ])
        }
    }

    static func hits(_ json: [String: Any]) -> [Hit] {
        (json["results"] as? [[String: Any]] ?? []).compactMap { hit in
            guard let pid = hit["pid"] as? String, let region = hit["region"] as? String, let source = hit["source"] as? String else { return nil }
            return Hit(pid: pid, region: region, source: source)
        }
    }

    /// A federated search on `node` (not recorded): every hit, retried until answered.
    func search(_ node: String, fresh: Bool) async throws -> [Hit] {
        let (method, path, role, body) = Self.request(for: .search(fresh: fresh))
        var last = ""
        for _ in 0..<50 {
            switch await call(node, method, path, role: role, body: body) {
            case .answer(200, let json, _): return Self.hits(json)
            case .answer(let status, let json, _): last = "\(status) \(json["code"] as? String ?? "")"
            case .notSent(let why), .lost(let why): last = why
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        throw FederationRunError("no search answer from \(node): \(last)")
    }

    func setUp(_ node: String, _ method: String, _ path: String, role: String, body: Any) async throws {
        var last = ""
        for _ in 0..<100 {
            switch await call(node, method, path, role: role, body: body) {
            case .answer(let status, _, _) where (200..<300).contains(status): return
            case .answer(let status, let json, _): last = "\(status) \(json)"
            case .notSent(let why), .lost(let why): last = why
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        throw FederationRunError("\(method) \(path) on \(node) did not succeed: \(last)")
    }

    /// Every node ready and seeing all nine alive.
    func awaitFederated(seconds: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var alive = 0
            for node in nodes.names {
                guard case .answer(200, let json, _) = await call(node, "GET", "/v1/cluster", role: "admin") else { break }
                let members = (json["pools"] as? [String: Any])?["federation"] as? [[String: Any]] ?? []
                if members.filter({ $0["status"] as? String == "alive" }).count == nodes.names.count { alive += 1 }
            }
            if alive == nodes.names.count { return }
            try await Task.sleep(nanoseconds: 300_000_000)
        }
        throw FederationRunError("the federation did not form in \(seconds) s")
    }

    /// The leader `region`'s serving nodes agree on, waiting up to `seconds`.
    func leader(of region: String, seconds: Double = 20) async -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var named: [String] = []
            for node in nodes.names where Self.region(of: node) == region && nodes.isServing(node) {
                if case .answer(200, let json, _) = await call(node, "GET", "/v1/cluster", role: "admin"),
                   let leader = (json["region_log"] as? [String: Any])?["leader"] as? String {
                    named.append(leader)
                }
            }
            if let leader = named.first, named.allSatisfy({ $0 == leader }), nodes.isServing(leader) { return leader }
            try? await Task.sleep(nanoseconds: 200_000_000)
        }
        return nil
    }

    func note(_ text: String) {
        let at = now
        recorded.withLock {
            $0.append(FederationEntry(client: "nemesis", node: "-", operation: .note(text), invoked: at, completed: at, acknowledged: false))
        }
    }
}

/// The federation's faults: each on a region drawn at random, after a quiet spell.
struct FederationNemesis {
    enum Fault: String, CaseIterable {
        case killLeader = "SIGKILL a region's leader, restart it"
        case pauseLeader = "SIGSTOP a region's leader past the election timeout, SIGCONT"
        case killFollower = "SIGKILL a region's follower, restart it"
        case regionOutage = "SIGKILL every node of a region, restart them seconds later"
    }

    let client: FederationClient

    func run(_ faults: [Fault], random: inout SeededRandom) async throws {
        try await sleep(draw(2, 3, &random))
        let regions = FederationJepsenTests.regions.keys.sorted()
        for fault in faults {
            let region = regions[Int(random.next() % UInt64(regions.count))]
            let members = client.nodes.names.filter { FederationClient.region(of: $0) == region }
            guard let leader = await client.leader(of: region) else {
                client.note("no leader in \(region) before \(fault.rawValue)")
                continue
            }
            client.note("\(fault.rawValue): \(region) (leader \(leader))")
            switch fault {
            case .killLeader:
                try await killAndRestart([leader], downFor: draw(1, 2, &random))
            case .killFollower:
                let followers = members.filter { $0 != leader }
                try await killAndRestart([followers[Int(random.next() % UInt64(followers.count))]], downFor: draw(1, 2, &random))
            case .regionOutage:
                try await killAndRestart(members, downFor: draw(3, 5, &random))
            case .pauseLeader:
                client.nodes.pause(leader)
                try await sleep(draw(4, 5, &random))
                client.nodes.resume(leader)
            }
            client.note("healed \(region)")
            try await sleep(draw(2, 3, &random))
        }
    }

    private func killAndRestart(_ victims: [String], downFor seconds: Double) async throws {
        for victim in victims { client.nodes.kill(victim) }
        try await sleep(seconds)
        for victim in victims { try client.nodes.start(victim) }
    }

    private func sleep(_ seconds: Double) async throws { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }

    private func draw(_ low: Double, _ high: Double, _ random: inout SeededRandom) -> Double {
        low + (high - low) * Double(random.next() % 1_000) / 1_000
    }
}

struct FederationRunError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}
