import DomicileModel
import DomicileNet
import DomicileNode
import Foundation

/// A one-region node for `domicile bench …`: laid out in `directory` on the
/// embedded default policy, started in-process (real sockets, real SQLite),
/// with a client sized for benchmark concurrency and a token per role.
struct BenchNode {
    let node: Node
    let client: HTTPClient
    let tokens: [String: String]
    /// Where the node's logs go: /dev/null, open while the node runs.
    private let quiet: Int32

    var address: SocketAddress { node.httpAddress }

    static func configPath(in directory: String) -> String { (directory as NSString).appendingPathComponent("eu-1/config.json") }

    /// `limits` replaces the config's `limits` object. With `layOut: false`
    /// the node restarts on what an earlier `start` laid out in `directory`.
    static func start(in directory: String, limits: [String: Any], requestTimeoutMilliseconds: Int64,
                      layOut: Bool = true) async throws -> BenchNode {
        let configPath = configPath(in: directory)
        if layOut {
            try ClusterInitCommand.write(.init(directory: directory, regions: [try RegionID("eu")], nodesPerRegion: 1, httpPort: 0, gossipPort: 0),
                                         policy: Array(DefaultPolicy.json.utf8), force: true)
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
            config["log"] = ["access": false]
            config["limits"] = limits
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        }
        let tokensPath = (directory as NSString).appendingPathComponent("tokens.json")
        let tokens = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tokensPath))) as! [String: String]
        let quiet = open("/dev/null", O_WRONLY)
        let node: Node
        do {
            node = try await Node.start(try NodeConfiguration.load(path: configPath), logger: Logger(clock: SystemClock(), descriptor: quiet))
        } catch {
            close(quiet)
            throw error
        }
        var settings = HTTPClient.Settings()
        settings.connectionsPerPeerMax = 256
        settings.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        return BenchNode(node: node, client: HTTPClient(settings: settings), tokens: tokens, quiet: quiet)
    }

    /// Bearer token of `role`, and a JSON content type.
    func headers(_ role: String) -> HTTPHeaders {
        ["Authorization": "Bearer \(tokens[role]!)", "Content-Type": "application/json"]
    }

    func stop(graceMilliseconds: Int64 = 2_000) async {
        await node.shutdown(graceMilliseconds: graceMilliseconds)
        close(quiet)
    }
}
