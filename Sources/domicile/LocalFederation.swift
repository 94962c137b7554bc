import DomicileClient
import DomicileModel
import DomicileNet
import Foundation

/// A federation of real `domicile serve` processes on loopback, for the demo
/// and `bench region`: laid out by `cluster init`, started from this very binary.
final class LocalFederation {
    let directory: String
    let tokens: [String: String]
    private(set) var processes: [String: RunningProcess] = [:]
    private(set) var addresses: [String: SocketAddress] = [:]
    let client: HTTPClient
    /// A `DomicileClient` per started node (the demo's calls).
    private(set) var clients = NodeClients()
    let nodeNames: [String]
    private let binary: String
    /// The layout's CA when the nodes serve TLS (`tls`), nil in plaintext.
    let caFile: String?

    /// `regionLog: false` lays out nodes that are each a store of their own.
    /// `wanRoundTrips` (milliseconds per pair, as `cluster init --wan-round-trips`) shapes the links between regions.
    /// `tls` lays out a local CA and node certificates (`cluster init --tls`); the calls trust the CA.
    init(directory: String, regions: [RegionID], nodesPerRegion: Int, regionLog: Bool = true, wanRoundTrips: [String: Int] = [:],
         tls: Bool = false) throws {
        self.directory = directory
        binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let count = regions.count * nodesPerRegion
        let base = try Self.freePortBase(count: 3 * count)
        var layout = ClusterInitCommand.Layout(directory: directory, regions: regions, nodesPerRegion: nodesPerRegion, httpPort: base,
                                               gossipPort: base + count)
        layout.channelPort = regionLog ? base + 2 * count : nil
        layout.wanRoundTrips = wanRoundTrips
        layout.tls = tls
        try ClusterInitCommand.write(layout, policy: Array(DefaultPolicy.json.utf8), force: true)
        caFile = tls ? (directory as NSString).appendingPathComponent("ca.pem") : nil
        let tokenData = try Data(contentsOf: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("tokens.json")))
        tokens = try JSONSerialization.jsonObject(with: tokenData) as? [String: String] ?? [:]
        nodeNames = regions.flatMap { region in (1...nodesPerRegion).map { "\(region)-\($0)" } }
        var settings = HTTPClient.Settings()
        settings.requestTimeoutMilliseconds = 10_000
        settings.tls = try caFile.map { try TLSContext.client(caFile: $0) }
        client = HTTPClient(settings: settings)
    }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Starts a node and waits for its `listening` line.
    func start(_ node: String) throws {
        let process = try RunningProcess(binary, ["serve", "--config", path("\(node)/config.json")],
                                         stderrPath: path("\(node)/stderr.log"))
        guard let line = process.waitForLine(timeout: 30, where: { $0.contains(#""event":"listening""#) }),
              let range = line.range(of: #""http":""#) else {
            process.signal(SIGKILL)
            let errors = (try? String(contentsOfFile: path("\(node)/stderr.log"), encoding: .utf8)) ?? ""
            let last = errors.split(separator: "\n").last.map(String.init) ?? process.output.last ?? "nothing"
            throw CLIError.failed("node \(node) did not start: \(last)")
        }
        let rest = line[range.upperBound...]
        addresses[node] = try SocketAddress(parsing: String(rest.prefix { $0 != "\"" }))
        processes[node] = process
        try clients.add(node, address: addresses[node]!, tokens: tokens, caFile: caFile)
    }

    func kill(_ node: String) {
        processes[node]?.signal(SIGKILL)
        processes[node]?.wait()
        processes[node] = nil
    }

    func stopAll() {
        for process in processes.values { process.signal(SIGTERM) }
        for (node, process) in processes {
            process.wait()
            writeLog(node)
        }
        processes.removeAll()
    }

    /// Saves a node's log lines (its standard output) beside its config.
    private func writeLog(_ node: String) {
        guard let process = processes[node] else { return }
        try? process.output.joined(separator: "\n").write(toFile: path("\(node)/node.log"), atomically: true, encoding: .utf8)
    }

    typealias Reply = NodeCaller.Reply

    /// What concurrent tasks share to call the nodes (the addresses as they are now).
    var caller: NodeCaller { NodeCaller(client: client, tokens: tokens, addresses: addresses) }

    func call(_ node: String, _ method: String, _ target: String, role: String, json: String? = nil) async throws -> Reply {
        try await caller.call(node, method, target, role: role, json: json)
    }

    /// The nodes of `region`, in order: eu-1, eu-2, …
    func nodes(of region: String) -> [String] { nodeNames.filter { $0.hasPrefix("\(region)-") } }

    /// `node`'s client, calling as `role` (see `NodeClients`).
    func node(_ node: String, as role: String) throws -> DomicileClient { try clients.node(node, as: role) }

    /// `node`'s view of its region log (`GET /v1/cluster`), nil while it does not answer.
    func regionLog(_ node: String) async -> RegionLogView? {
        guard let log = (try? await self.node(node, as: "serve").cluster())?.regionLog else { return nil }
        return RegionLogView(role: log.role, leader: log.leader, term: Int(log.term), commitIndex: Int(log.commitIndex),
                             appliedIndex: Int(log.appliedIndex))
    }

    struct RegionLogView {
        let role: String
        let leader: String?
        let term: Int
        let commitIndex: Int
        let appliedIndex: Int
    }

    /// The federation pool as `observer` sees it: name → status.
    func view(_ observer: String) async -> [String: String] {
        guard let members = (try? await node(observer, as: "serve").cluster())?.pools.federation else { return [:] }
        return Dictionary(uniqueKeysWithValues: members.map { ($0.name, $0.status) })
    }

    /// A run of `count` ports free now, below Linux's ephemeral range
    /// (32 768 and up): a port checked there can be taken by any outgoing
    /// connection before its node binds it (a CI run's demo lost its gossip
    /// port that way).
    static func freePortBase(count: Int) throws -> Int {
        for _ in 0..<50 {
            let base = Int.random(in: 10_000...(32_767 - count))
            if (base..<(base + count)).allSatisfy(isFree) { return base }
        }
        throw CLIError.failed("found no run of \(count) free ports")
    }

    private static func isFree(_ port: Int) -> Bool {
        guard let address = try? SocketAddress(parsing: "127.0.0.1:\(port)") else { return false }
        guard let tcp = try? Socket.listen(on: address, backlog: 1) else { return false }
        closeDescriptor(tcp)
        return (try? DatagramSocket(bind: address, receiveTimeoutMilliseconds: 1)) != nil
    }
}

/// Calls the federation's nodes with a role's bearer token; shareable by
/// concurrent tasks (the demo's write load).
struct NodeCaller: Sendable {
    let client: HTTPClient
    let tokens: [String: String]
    let addresses: [String: SocketAddress]

    struct Reply {
        let status: Int
        let json: [String: Any]

        /// The problem's `code`, or "".
        var code: String { json["code"] as? String ?? "" }
    }

    func call(_ node: String, _ method: String, _ target: String, role: String, json: String? = nil) async throws -> Reply {
        guard let address = addresses[node] else { throw CLIError.failed("node \(node) has no address (not started)") }
        var headers: HTTPHeaders = ["Authorization": "Bearer \(tokens[role] ?? "")"]
        if json != nil { headers.set("Content-Type", "application/json") }
        let response = try await client.send(method, target, to: address, headers: headers, body: Array((json ?? "").utf8))
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return Reply(status: response.status, json: object)
    }
}

/// A `DomicileClient` per node, for the demo: each calls its one node, one
/// exchange per call (no retry, no 421 followed), so what the demo prints is
/// what that node answered. Shareable by concurrent tasks (the write load).
struct NodeClients: Sendable {
    private var clients: [String: DomicileClient] = [:]
    private var tokens: [String: String] = [:]

    /// A client of the node at `address`; a restarted node keeps its client (and its port).
    mutating func add(_ node: String, address: SocketAddress, tokens: [String: String], caFile: String? = nil) throws {
        self.tokens = tokens
        guard clients[node]?.configuration.seeds != [address.description] else { return }
        var configuration = DomicileClient.Configuration(seeds: [address.description], caFile: caFile)
        configuration.attemptsMax = 1
        configuration.misdirectedHopsMax = 0
        configuration.requestTimeoutMilliseconds = 10_000
        clients[node] = try DomicileClient(configuration: configuration)
    }

    /// `node`'s client, calling with `role`'s token.
    func node(_ node: String, as role: String) throws -> DomicileClient {
        guard let client = clients[node] else { throw CLIError.failed("node \(node) has no address (not started)") }
        return client.withToken(tokens[role] ?? "")
    }
}
