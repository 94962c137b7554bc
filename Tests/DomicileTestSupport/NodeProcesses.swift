import DomicileNet
import Foundation

/// A directory laid out by `domicile cluster init` (keys, policy, principals,
/// tokens, one config per node), from which node processes are started.
public final class FederationFixture: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let tokens: [String: String]
    public let nodeNames: [String]
    /// The layout's CA (`ca.pem`), nil in plaintext.
    public let caFile: String?
    /// The client of the nodes' `call`: plaintext, or trusting `caFile`
    /// (one per fixture; its connections are reused across calls).
    public let client: HTTPClient

    /// `configure` may edit each node's config.json before any node starts.
    /// With `gossip`, nodes get consecutive free ports and seed each other;
    /// without, they pick their own HTTP port and run without gossip. With
    /// `regionLog`, each region's nodes share a region log over channel
    /// ports allocated the same way; without, each node is a store of its own.
    /// With `tls` (the default, as for `cluster init`), a local CA and node
    /// certificates: the nodes serve TLS, call each other over it, and
    /// `NodeProcess.call` (and `client`) trusts the CA. `tls: false` lays
    /// out `--plaintext`, for the tests that need it (a launcher rewriting
    /// addresses the certificates name; plaintext mode itself): say why at
    /// the call.
    public init(regions: [String] = ["eu"], nodesPerRegion: Int = 1, gossip: Bool = false, regionLog: Bool = false, tls: Bool = true,
                configure: (_ node: String, _ config: inout [String: Any]) -> Void = { _, _ in }) throws {
        directory = TemporaryDirectory("domicile-federation")
        let count = regions.count * nodesPerRegion
        let ports = gossip || regionLog ? try FreePorts.consecutive(count * 3) : nil
        var arguments = ["cluster", "init", "--dir", directory.path, "--regions", regions.joined(separator: ","),
                         "--nodes-per-region", "\(nodesPerRegion)", "--http-port", "\(gossip ? ports ?? 0 : 0)"]
        arguments += gossip ? ["--gossip-port", "\(ports! + count)"] : ["--no-gossip"]
        arguments += regionLog ? ["--channel-port", "\(ports! + 2 * count)", "--allow-two-nodes"] : ["--no-region-log"]
        arguments.append(tls ? "--tls" : "--plaintext")
        caFile = tls ? directory.file("ca.pem") : nil
        let result = try Binary.run(arguments)
        guard result.status == 0 else { throw FixtureError(description: "cluster init failed: \(result.stderr)") }
        client = try Self.client(trusting: caFile)
        let tokenData = try Data(contentsOf: URL(fileURLWithPath: directory.file("tokens.json")))
        tokens = (try JSONSerialization.jsonObject(with: tokenData) as? [String: String]) ?? [:]
        nodeNames = regions.flatMap { region in (1...nodesPerRegion).map { "\(region)-\($0)" } }
        for name in nodeNames {
            let path = configPath(name)
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
            configure(name, &config)
            let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: path))
        }
    }

    /// A client trusting `caFile` (with the connection limits tests need), plaintext without one.
    public static func client(trusting caFile: String?) throws -> HTTPClient {
        guard let caFile else { return HTTPClient() }
        var settings = HTTPClient.Settings()
        settings.tls = try TLSContext.client(caFile: caFile)
        return HTTPClient(settings: settings)
    }

    /// Reads `ca.pem` again into `client` (after a test rotates the CA).
    public func reloadTrust() throws {
        guard let caFile else { return }
        client.reloadTLS(try TLSContext.client(caFile: caFile))
    }

    public func configPath(_ node: String) -> String { directory.file("\(node)/config.json") }
    public func dataDirectory(_ node: String) -> String { directory.file("\(node)/data") }
    public func token(_ role: String) -> String { tokens[role]! }

    /// `--trust FILE` for each of `nodes`: its public signing keys as `domicile
    /// keys export-public` prints them, written once beside the fixture.
    public func trustArguments(for nodes: [String]) throws -> [String] {
        var arguments: [String] = []
        for node in nodes {
            let keysFile = directory.file("\(node)-keys.json")
            if !FileManager.default.fileExists(atPath: keysFile) {
                let keys = try Binary.run(["keys", "export-public", "--keyring", directory.file("\(node)/\(node).keyring"),
                                           "--master-key-file", directory.file("master.key")])
                guard keys.status == 0 else { throw FixtureError(description: "keys export-public \(node): \(keys.stderr)") }
                try Data(keys.stdout.utf8).write(to: URL(fileURLWithPath: keysFile))
            }
            arguments += ["--trust", keysFile]
        }
        return arguments
    }

    /// `launcher` runs the node through another command (e.g. `ip netns exec NS`), which must exec it.
    public func start(_ node: String, launcher: [String] = []) throws -> NodeProcess {
        try NodeProcess(name: node, configPath: configPath(node), logPath: directory.file("\(node)/stderr.log"), client: client,
                        caFile: caFile, launcher: launcher)
    }
}

/// Finds a run of free ports (TCP and UDP) for nodes that must know each
/// other's addresses before they start, below Linux's ephemeral range
/// (32 768 and up), where any outgoing connection could take a port checked
/// free before its node binds it.
public enum FreePorts {
    public static func consecutive(_ count: Int) throws -> Int {
        for _ in 0..<50 {
            let base = Int.random(in: 10_000...(32_767 - count))
            if (base..<(base + count)).allSatisfy(isFree) { return base }
        }
        throw FixtureError(description: "no run of \(count) free ports")
    }

    static func isFree(_ port: Int) -> Bool {
        for type in [Int32(SOCK_STREAM.rawValue), Int32(SOCK_DGRAM.rawValue)] {
            let descriptor = socket(AF_INET, type, 0)
            defer { close(descriptor) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound != 0 { return false }
        }
        return true
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
}

/// A `domicile serve` process. Its JSON log lines (standard output) are kept.
public final class NodeProcess: @unchecked Sendable {
    public let name: String
    public let address: SocketAddress
    public let process: RunningProcess
    /// The client of `call`: its fixture's (plaintext, or trusting the layout's CA).
    public let client: HTTPClient
    /// The layout's CA when the node serves TLS.
    public let caFile: String?

    init(name: String, configPath: String, logPath: String, client: HTTPClient, caFile: String?, launcher: [String] = []) throws {
        self.name = name
        self.client = client
        self.caFile = caFile
        let command = launcher + [Binary.path, "serve", "--config", configPath]
        process = try RunningProcess(command[0], Array(command.dropFirst()), stderrPath: logPath)
        guard let line = process.waitForLine(timeout: 30, where: { $0.contains(#""event":"listening""#) }),
              let data = line.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let http = object["http"] as? String else {
            process.signal(SIGKILL)
            process.wait()
            let errors = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw FixtureError(description: "node \(name) did not start: \(errors) \(process.output.suffix(5))")
        }
        address = try SocketAddress(parsing: http)
    }

    public var logLines: [String] { process.output }

    /// A byte-exact connection to the node's HTTP port: over TLS (trusting
    /// the layout's CA) when the node serves TLS, in clear otherwise.
    public func rawConnection(receiveTimeoutSeconds: Int = 10, receiveBufferBytes: Int32? = nil) throws -> RawConnection {
        try RawConnection(port: address.port, receiveTimeoutSeconds: receiveTimeoutSeconds, receiveBufferBytes: receiveBufferBytes,
                          caFile: caFile)
    }

    public func kill() {
        process.signal(SIGKILL)
        process.wait()
    }

    /// SIGSTOP: the process stays, its sockets stay open, and it answers nothing until `resume`.
    public func pause() { process.signal(SIGSTOP) }

    public func resume() { process.signal(SIGCONT) }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        process.signal(SIGTERM)
        return process.wait()
    }

    public struct Response: Sendable {
        public let status: Int
        public let headers: HTTPHeaders
        public let body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        public var contentType: String? { headers["content-type"] }

        public init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }

    /// Calls the node. `json` is sent as the body with Content-Type application/json.
    public func call(_ method: String, _ path: String, token: String?, json: String? = nil,
                     headers: [String: String] = [:]) async throws -> Response {
        var fields = HTTPHeaders()
        if let token { fields.set("Authorization", "Bearer \(token)") }
        if json != nil { fields.set("Content-Type", "application/json") }
        for (name, value) in headers { fields.set(name, value) }
        let response = try await client.send(method, path, to: address, headers: fields, body: Array((json ?? "").utf8))
        return Response(status: response.status, headers: response.headers, body: response.body)
    }
}
