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
    let nodeNames: [String]
    private let binary: String

    /// `regionLog: false` lays out nodes that are each a store of their own.
    init(directory: String, regions: [RegionID], nodesPerRegion: Int, regionLog: Bool = true) throws {
        self.directory = directory
        binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let count = regions.count * nodesPerRegion
        let base = try Self.freePortBase(count: 3 * count)
        var layout = ClusterInitCommand.Layout(directory: directory, regions: regions, nodesPerRegion: nodesPerRegion, httpPort: base,
                                               gossipPort: base + count)
        layout.channelPort = regionLog ? base + 2 * count : nil
        try ClusterInitCommand.write(layout, policy: Array(DefaultPolicy.json.utf8), force: true)
        let tokenData = try Data(contentsOf: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("tokens.json")))
        tokens = try JSONSerialization.jsonObject(with: tokenData) as? [String: String] ?? [:]
        nodeNames = regions.flatMap { region in (1...nodesPerRegion).map { "\(region)-\($0)" } }
        var settings = HTTPClient.Settings()
        settings.requestTimeoutMilliseconds = 10_000
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

    /// `node`'s view of its region log (`GET /v1/cluster`), nil while it does not answer.
    func regionLog(_ node: String) async -> RegionLogView? {
        guard let reply = try? await call(node, "GET", "/v1/cluster", role: "serve"),
              let log = reply.json["region_log"] as? [String: Any] else { return nil }
        return RegionLogView(role: log["role"] as? String ?? "?", leader: log["leader"] as? String,
                             term: (log["term"] as? NSNumber)?.intValue ?? 0, commitIndex: (log["commit_index"] as? NSNumber)?.intValue ?? 0,
                             appliedIndex: (log["applied_index"] as? NSNumber)?.intValue ?? 0)
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
        guard let reply = try? await call(observer, "GET", "/v1/cluster", role: "serve"),
              let pools = reply.json["pools"] as? [String: Any], let members = pools["federation"] as? [[String: Any]] else { return [:] }
        return Dictionary(uniqueKeysWithValues: members.compactMap { entry in
            (entry["name"] as? String).map { ($0, entry["status"] as? String ?? "?") }
        })
    }

    static func freePortBase(count: Int) throws -> Int {
        for _ in 0..<50 {
            let base = Int.random(in: 20_000...55_000)
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
