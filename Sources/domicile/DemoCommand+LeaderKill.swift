import DomicileClient
import DomicileModel
import DomicileNode
import DomicileStorage
import Foundation

extension DemoCommand {
    /// The region as one store that survives its leader: SIGKILL the
    /// leader during a write load, watch another take over, restart the
    /// killed node, then read every acknowledged write back through every
    /// node and compare the nodes' own audit chains.
    static func leaderKill(_ federation: LocalFederation, region: String) async throws {
        let nodes = federation.nodes(of: region)
        step("The region log: SIGKILL \(region)'s leader during a write load; the region keeps serving and loses nothing acknowledged")
        guard let leader = await agreedLeader(federation, nodes: nodes, within: 15) else {
            throw CLIError.failed("the nodes of \(region) did not agree on a leader")
        }
        say("\(leader) leads \(region) (GET /v1/cluster on \(nodes.joined(separator: ", ")))")
        let (successor, written) = try await kill(leader, underLoadOn: nodes, federation)
        try await restart(leader, following: successor, federation)
        try await readBack(written, through: nodes, clients: federation.clients)
        try await compareAuditChains(federation, nodes: nodes)
    }

    /// Runs the write load, kills `leader` in the middle of it, and keeps
    /// the load running until a write sent after the kill is acknowledged
    /// (and a second more). Returns the new leader and every acknowledged write.
    static func kill(_ leader: String, underLoadOn nodes: [String], _ federation: LocalFederation) async throws
        -> (successor: String, written: [WriteLoad.Write]) {
        let load = WriteLoad(targets: nodes)
        let nodeClients = federation.clients
        let clients = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 1...WriteLoad.clientCount { group.addTask { await load.runClient(clients: nodeClients) } }
            }
        }
        _ = await waitUntil(seconds: 10) { await load.acknowledgedCount >= 40 }
        let before = await load.acknowledgedCount
        await load.avoid(leader)
        federation.kill(leader)
        await load.killed()
        say("\(WriteLoad.clientCount) clients register subjects and grant consent round-robin on \(nodes.joined(separator: ", ")); "
            + "after \(before) acknowledged writes, SIGKILL \(leader)")

        _ = await waitUntil(seconds: 20) { await load.recovery != nil }
        let survivors = nodes.filter { $0 != leader }
        guard let recovery = await load.recovery, let successor = await agreedLeader(federation, nodes: survivors, within: 10),
              successor != leader else {
            await load.stop()
            throw CLIError.failed("no write sent after the kill of \(leader) was acknowledged by a new leader in 20 s")
        }
        let term = await federation.regionLog(successor)?.term ?? 0
        say(String(format: "new leader %@ (term %d) acknowledged the first write sent after the kill %.1f s after it; meanwhile "
                   + "%@ got 503 no_quorum (the clients retried) and %@ in flight to %@ got no answer",
                   successor, term, recovery.seconds, calls(recovery.noQuorum), calls(recovery.unanswered), leader))
        let during = await load.acknowledgedCount
        try? await Task.sleep(nanoseconds: 1_000_000_000)
        await load.stop()
        await clients.value
        let written = await load.acknowledged
        say("the region kept serving: \(written.count - during) more writes acknowledged in the next second on "
            + survivors.joined(separator: " and "))
        return (successor, written)
    }

    /// Restarts the killed node and waits until it has applied what the
    /// leader had committed.
    static func restart(_ node: String, following leader: String, _ federation: LocalFederation) async throws {
        try federation.start(node)
        let restartedAt = Date()
        let commit = await federation.regionLog(leader)?.commitIndex ?? 0
        let caughtUp = await waitUntil(seconds: 20) { (await federation.regionLog(node)?.appliedIndex ?? 0) >= commit }
        guard caughtUp else { throw CLIError.failed("\(node) did not catch up to commit index \(commit) in 20 s") }
        let follows = await federation.regionLog(node)?.leader ?? "no leader yet"
        say(String(format: "%@ restarted and applied the log up to the leader's commit index %d in %.1f s; its leader: %@",
                   node, commit, Date().timeIntervalSince(restartedAt), follows))
    }

    static func calls(_ count: Int) -> String { count == 1 ? "1 call" : "\(count) calls" }

    /// The leader every node of `nodes` names, once they agree.
    static func agreedLeader(_ federation: LocalFederation, nodes: [String], within seconds: Double) async -> String? {
        var agreed: String?
        _ = await waitUntil(seconds: seconds) {
            var leaders = Set<String?>()
            for node in nodes { leaders.insert(await federation.regionLog(node)?.leader) }
            agreed = leaders.count == 1 ? leaders.first! : nil
            return agreed != nil
        }
        return agreed
    }

    /// Reads every acknowledged write through every node: a registration by
    /// looking its identifier up, a grant by the subject's active consent.
    /// A read the region refuses (503, no answer) is retried: only a read
    /// that answers without the write counts as lost.
    static func readBack(_ writes: [WriteLoad.Write], through nodes: [String], clients: NodeClients) async throws {
        let checks = nodes.flatMap { node in writes.map { (node, $0) } }
        let outcomes = await withTaskGroup(of: [String: [String]].self) { group in
            for worker in 0..<WriteLoad.clientCount {
                group.addTask {
                    var outcomes: [String: [String]] = [:]
                    for index in stride(from: worker, to: checks.count, by: WriteLoad.clientCount) {
                        let (node, write) = checks[index]
                        var found = await write.readBack(on: node, clients: clients)
                        for _ in 0..<20 where found == nil {
                            try? await Task.sleep(nanoseconds: 250_000_000)
                            found = await write.readBack(on: node, clients: clients)
                        }
                        if found != true { outcomes[found == false ? "lost" : "unread", default: []].append("\(write.kind) on \(node)") }
                    }
                    return outcomes
                }
            }
            return await group.reduce(into: [:]) { $0.merge($1, uniquingKeysWith: +) }
        }
        if let lost = outcomes["lost"] {
            throw CLIError.failed("LOST: \(lost.count) acknowledged writes did not read back: \(lost.prefix(5).joined(separator: ", "))")
        }
        if let unread = outcomes["unread"] {
            throw CLIError.failed("\(unread.count) reads were refused for 5 s: \(unread.prefix(5).joined(separator: ", "))")
        }
        say("nothing acknowledged was lost: \(writes.count) of \(writes.count) writes read back on \(nodes.joined(separator: ", "))")
    }

    /// Once every node has applied the same index, each node's own database
    /// must hold the same valid audit chain (same length, same head), and
    /// `GET /v1/audit/verify` through each node must answer that head.
    static func compareAuditChains(_ federation: LocalFederation, nodes: [String]) async throws {
        var chains: [String: AuditLog.Verification] = [:]
        var answered: [String: String] = [:]
        let agree = await waitUntil(seconds: 10) {
            var applied = Set<Int>()
            for node in nodes { applied.insert(await federation.regionLog(node)?.appliedIndex ?? -1) }
            guard applied.count == 1 else { return false }
            chains = Dictionary(uniqueKeysWithValues: nodes.compactMap { node in ownAuditChain(of: node, federation).map { (node, $0) } })
            for node in nodes {
                answered[node] = (try? await federation.node(node, as: "privacy_officer").verifyAudit())?.head
            }
            let heads = Set(chains.values.map(\.head))
            return chains.count == nodes.count && chains.values.allSatisfy(\.valid) && heads.count == 1 && Set(answered.values) == heads
        }
        guard agree, let chain = chains[nodes[0]] else {
            let heads = nodes.map { "\($0): \(chains[$0].map { "\($0.length) events, head \($0.head.prefix(12))" } ?? "unreadable"), "
                                    + "API head \(answered[$0]?.prefix(12) ?? "none")" }
            throw CLIError.failed("the nodes' audit chains differ: \(heads.joined(separator: "; "))")
        }
        say("audit heads agree: each node's own database holds a valid chain of \(chain.length) events, head \(chain.head.prefix(16))… "
            + "(\(nodes.joined(separator: ", "))), the head GET /v1/audit/verify answers through each of them")
    }

    /// The audit chain in `node`'s own database, read beside the running node.
    static func ownAuditChain(of node: String, _ federation: LocalFederation) -> AuditLog.Verification? {
        var options = Database.Options()
        options.queryOnly = true
        guard let database = try? Database(path: federation.path("\(node)/data/node.sqlite"), options: options) else { return nil }
        return try? AuditLog.verify(database)
    }
}

/// Clients writing to a region's nodes round-robin while one of them is
/// killed. Each client registers a subject on one node and grants it
/// consent on the next; the load records which writes were acknowledged,
/// and, after the kill, how the region recovered.
actor WriteLoad {
    static let clientCount = 4

    /// An acknowledged write, and how to read it back.
    enum Write: Sendable {
        case registration(identifier: String, pid: String)
        case grant(pid: String, purpose: String)

        var kind: String {
            switch self {
            case .registration: "registration"
            case .grant: "grant"
            }
        }

        /// true: the write is there; false: the node answered without it;
        /// nil: no answer (refused with 503 or 429, or unreachable).
        func readBack(on node: String, clients: NodeClients) async -> Bool? {
            let answer: CallOutcome<Bool>
            switch self {
            case .registration(let identifier, let pid):
                answer = await CallOutcome { try await clients.node(node, as: "serve").lookup(.customerID(identifier)) == pid }
            case .grant(let pid, let purpose):
                answer = await CallOutcome { try await clients.node(node, as: "serve").consent(of: pid).purposes.contains(purpose) }
            }
            switch answer {
            case .answered(let found): return found
            case .refused(let problem): return [429, 503].contains(problem.status) ? nil : false
            case .unanswered: return nil
            }
        }
    }

    struct Recovery {
        let seconds: Double
        let noQuorum: Int
        let unanswered: Int
    }

    private var targets: [String]
    private var turn = 0
    private var serial = 0
    private var stopped = false
    private(set) var acknowledged: [Write] = []
    private var killedAt: Date?
    private var firstAcknowledgedAfterKill: Date?
    private var noQuorumAfterKill = 0
    private var unansweredAfterKill = 0

    init(targets: [String]) { self.targets = targets }

    var acknowledgedCount: Int { acknowledged.count }

    var recovery: Recovery? {
        guard let killedAt, let firstAcknowledgedAfterKill else { return nil }
        return Recovery(seconds: firstAcknowledgedAfterKill.timeIntervalSince(killedAt), noQuorum: noQuorumAfterKill,
                        unanswered: unansweredAfterKill)
    }

    /// `node` is about to be killed: calls go to the others from now on.
    func avoid(_ node: String) { targets.removeAll { $0 == node } }

    /// The node is dead: a write sent from now on can only be acknowledged by a new leader.
    func killed() { killedAt = Date() }

    func stop() { stopped = true }

    /// The next subject to write and the two nodes to write it through; nil once stopped.
    private func next() -> (identifier: String, register: String, grant: String)? {
        guard !stopped else { return nil }
        serial += 1
        turn += 1
        return ("load-\(serial)", targets[turn % targets.count], targets[(turn + 1) % targets.count])
    }

    /// Records a call's outcome; `write` is what it wrote if it was acknowledged.
    private func record(_ write: Write?, status: Int?, code: String, startedAt: Date) {
        if let write {
            acknowledged.append(write)
            if let killedAt, startedAt > killedAt, firstAcknowledgedAfterKill == nil { firstAcknowledgedAfterKill = Date() }
        } else if killedAt != nil, firstAcknowledgedAfterKill == nil {
            if status == 503 && code == "no_quorum" { noQuorumAfterKill += 1 } else if status == nil { unansweredAfterKill += 1 }
        }
    }

    /// One client: writes until the load stops.
    nonisolated func runClient(clients: NodeClients) async {
        while let (identifier, registerOn, grantOn) = await next() {
            var started = Date()
            let registered = await CallOutcome {
                try await clients.node(registerOn, as: "ingest").register(.customerID(identifier), home: .country("DE"))
            }
            // Acknowledged: created now (an existing subject would answer 200, created false).
            let pid = registered.value.flatMap { $0.created ? $0.pid : nil }
            await record(pid.map { .registration(identifier: identifier, pid: $0) }, status: registered.status(success: 200),
                         code: registered.code, startedAt: started)
            guard let pid else {
                await Self.pause()
                continue
            }
            started = Date()
            let granted = await CallOutcome {
                try await clients.node(grantOn, as: "ingest").appendConsent(
                    .grant(["product_recs"], source: "load:v1", collectedAt: Timestamp.now.rfc3339), for: pid)
            }
            await record(granted.value != nil ? .grant(pid: pid, purpose: "product_recs") : nil, status: granted.status(success: 201),
                         code: granted.code, startedAt: started)
            if granted.value == nil { await Self.pause() }
        }
    }

    /// A refused or failed call: wait a little before the next (a client honouring `Retry-After` would wait longer).
    private static func pause() async {
        try? await Task.sleep(nanoseconds: 100_000_000)
    }
}

/// How one call of the load ended: answered, refused with a problem, or
/// without an answer (the node unreachable, the connection lost).
enum CallOutcome<Value: Sendable>: Sendable {
    case answered(Value)
    case refused(DomicileProblem)
    case unanswered

    init(_ call: () async throws -> Value) async {
        do {
            self = .answered(try await call())
        } catch let problem as DomicileProblem {
            self = .refused(problem)
        } catch {
            self = .unanswered
        }
    }

    var value: Value? {
        if case .answered(let value) = self { return value }
        return nil
    }

    /// The response's status: a refusal's, `success` for an answer, nil without one.
    func status(success: Int) -> Int? {
        switch self {
        case .answered: return success
        case .refused(let problem): return problem.status
        case .unanswered: return nil
        }
    }

    /// A refusal's code, or "".
    var code: String {
        if case .refused(let problem) = self { return problem.code.rawValue }
        return ""
    }
}
