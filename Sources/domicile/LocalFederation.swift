import DomicileModel
import DomicileNet
import Foundation

/// A federation of real `domicile serve` processes on loopback, for the demo:
/// laid out by `cluster init`, started from this very binary.
final class LocalFederation {
    let directory: String
    let tokens: [String: String]
    private(set) var processes: [String: RunningProcess] = [:]
    private(set) var addresses: [String: SocketAddress] = [:]
    let client: HTTPClient
    let nodeNames: [String]
    private let binary: String

    init(directory: String, regions: [RegionID], nodesPerRegion: Int) throws {
        self.directory = directory
        binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let count = regions.count * nodesPerRegion
        let base = try Self.freePortBase(count: 3 * count)
        var layout = ClusterInitCommand.Layout(directory: directory, regions: regions, nodesPerRegion: nodesPerRegion, httpPort: base,
                                               gossipPort: base + count)
        layout.channelPort = base + 2 * count
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
            throw CLIError.failed("node \(node) did not start (see \(path("\(node)/stderr.log")))")
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

    struct Reply {
        let status: Int
        let json: [String: Any]
    }

    func call(_ node: String, _ method: String, _ target: String, role: String, json: String? = nil) async throws -> Reply {
        var headers: HTTPHeaders = ["Authorization": "Bearer \(tokens[role] ?? "")"]
        if json != nil { headers.set("Content-Type", "application/json") }
        let response = try await client.send(method, target, to: addresses[node]!, headers: headers, body: Array((json ?? "").utf8))
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return Reply(status: response.status, json: object)
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
