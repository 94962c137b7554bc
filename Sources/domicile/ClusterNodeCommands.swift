import DomicileConsensus
import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// `domicile cluster add-node`: lays out one more node of a running region
/// in a directory written by `cluster init`.
struct ClusterAddNodeCommand: Command {
    static let path = ["cluster", "add-node"]
    static let summary = "lay out a node joining a running region (then start it and `cluster join` it)"
    static let help = """
        --dir DIR --region REGION --name NAME --http-port PORT --channel-port PORT [--gossip-port PORT]

        Writes DIR/NAME: a keyring holding the region's keys (from an existing node of the region) and
        a new signing key, and a config whose region_log starts with no membership (join). Adds NAME,
        its channel address and public key to DIR/REGION.roster.json, which the region's running nodes
        re-read. Then: start it (domicile serve --config DIR/NAME/config.json) and add it to the log
        with `domicile cluster join NAME --via HOST:PORT --token-file DIR/tokens.json`: it receives the
        log (or a snapshot) as a learner and becomes a voter once caught up.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let directory = try arguments.required("dir")
        let region = try RegionID(try arguments.required("region"))
        let name = try NodeName(try arguments.required("name"))
        let httpPort = try arguments.integer("http-port", default: -1, range: 0...65_535)
        let channelPort = try arguments.integer("channel-port", default: -1, range: 1...65_535)
        let gossipPort = try arguments.option("gossip-port").map { text -> Int in
            guard let port = Int(text), (1...65_535).contains(port) else { throw CLIError.usage("--gossip-port must be a port") }
            return port
        }
        try arguments.finish()
        guard httpPort >= 0, channelPort > 0 else { throw CLIError.usage("--http-port and --channel-port are required") }
        func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let rosterPath = file("\(region).roster.json")
        guard var roster = try? JSONSerialization.jsonObject(with: Data(try FileIO.read(rosterPath, byteCountMax: 1 << 20))) as? [String: Any],
              var nodes = roster["nodes"] as? [[String: Any]], let model = nodes.first?["name"] as? String else {
            throw CLIError.failed("\(rosterPath) is not a region roster written by `cluster init`")
        }
        guard !nodes.contains(where: { $0["name"] as? String == name.rawValue }) else {
            throw CLIError.failed("\(name) is already in \(rosterPath)")
        }
        let master = try MasterKey(base64: String(decoding: try FileIO.read(file("master.key"), byteCountMax: 1_024), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines))
        let source = try KeyringFile.load(path: file("\(model)/\(model).keyring"), master: master)
        let keyring = Keyring.generate(region: region, node: name, createdAt: Int64(Date().timeIntervalSince1970), inheriting: source)
        let nodeDirectory = file(name.rawValue)
        try FileManager.default.createDirectory(atPath: nodeDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try KeyringFile.save(keyring, path: (nodeDirectory as NSString).appendingPathComponent("\(name).keyring"), master: master, replacing: false)

        let channel = "127.0.0.1:\(channelPort)"
        var configuration: [String: Any] = [
            "node": name.rawValue, "region": region.rawValue, "data_dir": "data", "keyring": "\(name).keyring",
            "master_key_file": "../master.key", "policy": "../policy.json", "principals": "../principals.json",
            "http": ["address": "127.0.0.1:\(httpPort)"],
            "region_log": ["address": channel, "roster": "../\(region).roster.json", "join": true],
        ]
        let modelConfig = try JSONSerialization.jsonObject(with: Data(try FileIO.read(file("\(model)/config.json"), byteCountMax: 1 << 20)))
        // The same federation rosters as the region's other nodes (its own region's roster lists it too).
        if let federation = (modelConfig as? [String: Any])?["federation"] { configuration["federation"] = federation }
        // TLS like the region's other nodes: a certificate from the layout's CA, or plaintext as they have.
        if FileManager.default.fileExists(atPath: file("ca-key.pem")) {
            let authority = try IssuedCertificate(certificateFile: file("ca.pem"), keyFile: file("ca-key.pem"))
            configuration["tls"] = try ClusterInitCommand.issueCertificate(for: name, hosts: ["127.0.0.1"], in: nodeDirectory,
                                                                           by: authority, replacing: false)
        } else {
            configuration["tls"] = (modelConfig as? [String: Any])?["tls"] ?? ["plaintext": true]
        }
        if let gossipPort {
            let gossip = (modelConfig as? [String: Any])?["gossip"] as? [String: Any]
            let seeds = [gossip?["address"] as? String].compactMap { $0 } + ((gossip?["seeds"] as? [String]) ?? [])
            configuration["gossip"] = ["address": "127.0.0.1:\(gossipPort)", "seeds": seeds, "profile": gossip?["profile"] ?? "default"]
        }
        try ClusterInitCommand.writeJSON(configuration, to: (nodeDirectory as NSString).appendingPathComponent("config.json"),
                                         mode: 0o644, replacing: false)
        nodes.append(["name": name.rawValue, "channel": channel,
                      "public_key": Base64.encodeURL(try keyring.signingKey().publicKey.rawRepresentation)])
        roster["nodes"] = nodes
        try ClusterInitCommand.writeJSON(roster, to: rosterPath, mode: 0o644, replacing: true)
        Output.line("laid out \(name) in \(nodeDirectory) and added it to \(rosterPath)")
        Output.line("next: domicile serve --config \(nodeDirectory)/config.json")
        let tls = FileManager.default.fileExists(atPath: file("ca.pem")) ? " --ca-file \(file("ca.pem"))" : ""
        Output.line("then: domicile cluster join \(name) --via HOST:PORT --token-file \(file("tokens.json"))\(tls)")
    }
}

/// `domicile cluster join` and `remove-node`: membership changes of a
/// running region's log, through any of its nodes (the leader makes them).
struct ClusterJoinCommand: Command {
    static let path = ["cluster", "join"]
    static let summary = "add a started node to its region's log (learner, then voter once caught up)"
    static let help = """
        NAME --via HOST:PORT --token-file FILE [--ca-file FILE]

        Asks the region (any node: it forwards to the leader) to add NAME, which must be listed in the
        roster and running with region_log.join. Returns once NAME has caught up and votes. Audited.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let call = try MembershipCall(&arguments)
        let reply = try await call.send("POST", "/v1/cluster/region-log/members", body: #"{"name":"\#(call.name)"}"#)
        let name = call.name
        Output.line("\(name) joined; voters: \(MembershipCall.voters(reply))")
    }
}

struct ClusterRemoveNodeCommand: Command {
    static let path = ["cluster", "remove-node"]
    static let summary = "remove a node from its region's log"
    static let help = """
        NAME --via HOST:PORT --token-file FILE [--ca-file FILE]

        Asks the region (any node) to remove NAME from its log; NAME then receives no more entries and
        may be stopped. Removing the leader first hands the leadership to another voter. Audited.
        --ca-file: the nodes serve TLS (cluster init --tls: DIR/ca.pem); the call verifies them against it.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let call = try MembershipCall(&arguments)
        let reply = try await call.send("DELETE", "/v1/cluster/region-log/members/\(call.name)", body: nil)
        let name = call.name
        Output.line("\(name) removed; voters: \(MembershipCall.voters(reply))")
    }
}

/// A membership change sent to a node of the region: `NAME --via HOST:PORT --token-file FILE [--ca-file FILE]`.
struct MembershipCall {
    let name: NodeName
    let via: SocketAddress
    let token: String
    /// The CA of nodes that serve TLS; nil: plaintext.
    let caFile: String?

    init(_ arguments: inout Arguments) throws {
        guard let text = arguments.positional() else { throw CLIError.usage("name the node") }
        name = try NodeName(text)
        via = try SocketAddress(parsing: try arguments.required("via"))
        let tokenFile = try arguments.required("token-file")
        caFile = try arguments.option("ca-file")
        try arguments.finish()
        let tokens = try JSONSerialization.jsonObject(with: Data(try FileIO.read(tokenFile, byteCountMax: 1 << 20))) as? [String: String]
        guard let token = tokens?["admin"] else { throw CLIError.failed("\(tokenFile) has no admin token") }
        self.token = token
    }

    /// Sends the call, asking again while the region answers 503 (an
    /// election, or the leader handing over before it removes itself).
    func send(_ method: String, _ target: String, body: String?) async throws -> [String: Any] {
        var settings = HTTPClient.Settings()
        settings.requestTimeoutMilliseconds = 150_000
        do { settings.tls = try caFile.map { try TLSContext.client(caFile: $0) } } catch { throw CLIError.failed("--ca-file: \(error)") }
        let client = HTTPClient(settings: settings)
        var headers: HTTPHeaders = ["Authorization": "Bearer \(token)"]
        if body != nil { headers.set("Content-Type", "application/json") }
        for _ in 0..<20 {
            let response = try await client.send(method, target, to: via, headers: headers, body: Array((body ?? "").utf8))
            let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            if response.status == 200 { return json }
            guard response.status == 503 else {
                throw CLIError.failed("\(response.status) \(json["code"] ?? ""): \(json["detail"] ?? "")")
            }
            try await Task.sleep(nanoseconds: 500_000_000)
        }
        throw CLIError.failed("the region kept answering 503: no leader with a majority")
    }

    static func voters(_ reply: [String: Any]) -> String {
        ((reply["voters"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }.joined(separator: ", ")
    }
}

/// `domicile cluster recover`: the deliberate, audited way out when a
/// region lost its majority for good.
struct ClusterRecoverCommand: Command {
    static let path = ["cluster", "recover"]
    static let summary = "make a stopped node the voters of its region after the majority is lost for good"
    static let help = """
        --config FILE --confirm

        Run on ONE stopped survivor (the one whose log is furthest along) when a majority of its region's
        voters is gone for good (their disks are lost): writes to its region log a membership of this
        node alone, in a new term, so that it leads by itself. Everything in its log is kept and will be
        committed; writes acknowledged by the lost majority that never reached it are lost, which is why
        this is never automatic. The node records the recovery in the region's audit log (action
        region_log.recover) once it leads. Every other node of the old region — survivors included — must
        not be started again with its old data: lay it out anew (cluster add-node) and join it, so that it
        catches up from the recovered node. docs/REGION_LOG.md, "Recovering a region that lost its majority".
        """

    static func run(_ arguments: inout Arguments) async throws {
        let configuration = try NodeConfiguration.load(path: try arguments.required("config"))
        let confirmed = arguments.flag("confirm")
        try arguments.finish()
        guard confirmed else { throw CLIError.usage("recovery may lose acknowledged writes: pass --confirm to do it") }
        // One recovered voter: two survivors recovered apart could each take a
        // term above the other's entries and truncate them when they meet.
        let voters: Set = [configuration.node]
        guard configuration.regionLog != nil else { throw CLIError.usage("this node runs without a region log") }
        let recovered = try RegionRecovery.recover(configuration, voters: voters, now: Int64(Date().timeIntervalSince1970))
        Output.line("region log of \(configuration.node): voters now \(voters.sorted().map(\.rawValue).joined(separator: ", ")) "
                    + "from entry \(recovered.index), term \(recovered.term); start the node(s)")
    }
}
