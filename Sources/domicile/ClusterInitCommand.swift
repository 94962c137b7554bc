import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// `domicile cluster init`: writes everything a local federation needs.
struct ClusterInitCommand: Command {
    static let path = ["cluster", "init"]
    static let summary = "lay out keys, policy, principals and configs for local nodes"
    static let help = """
        --dir DIR [--regions eu,us,br] [--nodes-per-region 3] [--http-port 7100]
                  [--gossip-port 7300 | --no-gossip] [--channel-port 7500 | --no-region-log]
                  [--allow-two-nodes] [--policy FILE] [--force]
                  [--wan-round-trips eu-us=80,us-br=120,*=40 [--wan-loss PERCENT]]
                  [--hosts eu=192.168.56.11,us=192.168.56.12,br=192.168.56.13] [--plaintext]

        Writes into DIR: master.key (mode 0600), policy.json (the embedded default unless --policy),
        principals.json and tokens.json (one bearer token per role, plus a second privacy officer),
        and per node NAME (eu-1, eu-2, …): NAME/NAME.keyring and NAME/config.json. Keyrings of a
        region share region keys, all share federation keys. Ports count up from the bases;
        --http-port 0 lets each node pick a free port (it logs the one it bound). Gossip ports must be
        known in advance, since every node's config lists the others' as seeds: --gossip-port 0 is
        refused; --no-gossip writes nodes that run without membership (each node alone).

        Each region's nodes share one region log (Raft over the region channel, ports counting up
        from --channel-port): REGION.roster.json lists each node's name, channel address and public
        signing key. A region of two nodes tolerates no failure (losing either stops its writes):
        it is refused unless --allow-two-nodes. --no-region-log writes nodes that are each a store
        of their own.

        --wan-round-trips writes a `wan` section into every config: the round-trip milliseconds per pair
        of regions (`*` for the pairs not named), which the nodes add in their own transports to what
        they send to the other regions (half each way), and --wan-loss, the percent of gossip
        datagrams lost between regions. `cluster/up --wan` passes the round trips of cluster/netns.

        --hosts puts each region's nodes on a host of its own (an IPv4 address; 127.0.0.1 for a region
        not named), as the Vagrantfile's three VMs do; the ports still count up over every node.

        By default it makes a local certificate authority (DIR/ca.pem, its key DIR/ca-key.pem, mode 0600) and
        per node a certificate for its host (NAME/NAME.pem, key NAME/NAME-key.pem), and the configs serve the
        HTTP API over TLS 1.3 with them and trust the CA in their calls to peers; clients need DIR/ca.pem
        (curl --cacert, DomicileClient's caFile). --plaintext writes "tls": {"plaintext": true} instead, which
        every node logs at start and reports in /readyz. (--tls, the default, is accepted.)
        """

    struct Layout {
        let directory: String
        let regions: [RegionID]
        let nodesPerRegion: Int
        let httpPort: Int
        /// nil: the nodes run without gossip.
        let gossipPort: Int?
        /// nil: the nodes run without a region log.
        var channelPort: Int? = nil
        /// Round-trip milliseconds and loss percent per pair of regions (`wan`); empty: none.
        var wanRoundTrips: [String: Int] = [:]
        var wanLossPercent: Double = 0
        /// The address of each region's nodes; 127.0.0.1 for a region not listed.
        var hosts: [RegionID: String] = [:]
        /// A local CA and a certificate per node (the CLI's default); false: explicit plaintext (`--plaintext`).
        var tls = false

        var nodes: [(name: NodeName, region: RegionID, index: Int)] {
            var nodes: [(NodeName, RegionID, Int)] = []
            for (regionIndex, region) in regions.enumerated() {
                for number in 1...nodesPerRegion {
                    nodes.append((try! NodeName("\(region)-\(number)"), region, regionIndex * nodesPerRegion + number - 1))
                }
            }
            return nodes
        }

        func httpAddress(_ index: Int) -> String { "\(host(index)):\(httpPort == 0 ? 0 : httpPort + index)" }
        func gossipAddress(_ index: Int) -> String? { gossipPort.map { "\(host(index)):\($0 + index)" } }
        func channelAddress(_ index: Int) -> String? { channelPort.map { "\(host(index)):\($0 + index)" } }
        func host(_ index: Int) -> String { hosts[regions[index / nodesPerRegion]] ?? "127.0.0.1" }

        /// The `wan` section every node's config gets, or nil.
        var wanSection: [String: Any]? {
            guard !wanRoundTrips.isEmpty else { return nil }
            var peers: [String: String] = [:]
            for node in nodes {
                peers[httpAddress(node.index)] = node.region.rawValue
                if let gossip = gossipAddress(node.index) { peers[gossip] = node.region.rawValue }
            }
            var section: [String: Any] = ["peers": peers, "round_trip_ms": wanRoundTrips]
            if wanLossPercent > 0 { section["loss_percent"] = wanRoundTrips.mapValues { _ in wanLossPercent } }
            return section
        }
    }

    static func run(_ arguments: inout Arguments) async throws {
        let directory = try arguments.required("dir")
        let regionNames = (try arguments.option("regions") ?? "eu,us,br").split(separator: ",").map(String.init)
        let nodesPerRegion = try arguments.integer("nodes-per-region", default: 3, range: 1...16)
        let httpPort = try arguments.integer("http-port", default: 7_100, range: 0...65_000)
        let gossipPort = try arguments.integer("gossip-port", default: 7_300, range: 0...65_000)
        let noGossip = arguments.flag("no-gossip")
        let channelPort = try arguments.integer("channel-port", default: 7_500, range: 0...65_000)
        let noRegionLog = arguments.flag("no-region-log")
        let allowTwo = arguments.flag("allow-two-nodes")
        let policyFile = try arguments.option("policy")
        let force = arguments.flag("force")
        let wanRoundTrips = try arguments.option("wan-round-trips")
        let wanLoss = try arguments.option("wan-loss")
        let hosts = try arguments.option("hosts")
        // TLS unless asked, explicitly, for plaintext (`--tls` is the default, still accepted).
        _ = arguments.flag("tls")
        let tls = !arguments.flag("plaintext")
        try arguments.finish()
        let regions = try regionNames.map { name in
            do { return try RegionID(name) } catch { throw CLIError.usage("--regions: '\(name)' is not a region id") }
        }
        guard gossipPort != 0 else {
            throw CLIError.usage("--gossip-port 0 would leave every node without seeds (each node's gossip port must be known "
                                 + "to the others); give a base port, or --no-gossip to run the nodes without membership")
        }
        guard noRegionLog || channelPort != 0 else {
            throw CLIError.usage("--channel-port 0 would leave the roster without addresses (each node's channel port must be known "
                                 + "to the others); give a base port, or --no-region-log")
        }
        guard noRegionLog || nodesPerRegion != 2 || allowTwo else {
            throw CLIError.usage("a region of 2 nodes tolerates no failure: losing either node stops the region's writes. "
                                 + "Use 3 (or 1, 5); pass --allow-two-nodes to write 2 anyway")
        }
        var layout = Layout(directory: directory, regions: regions, nodesPerRegion: nodesPerRegion, httpPort: httpPort,
                            gossipPort: noGossip ? nil : gossipPort)
        layout.channelPort = noRegionLog ? nil : channelPort
        layout.hosts = try hosts.map { try regionHosts($0, regions: regions) } ?? [:]
        layout.tls = tls
        if let wanRoundTrips {
            guard httpPort != 0 else { throw CLIError.usage("--wan-round-trips needs every node's address in advance: give an --http-port base") }
            layout.wanRoundTrips = try roundTrips(wanRoundTrips, regions: regions)
            layout.wanLossPercent = try wanLoss.map { text in
                guard let percent = Double(text), (0...100).contains(percent) else { throw CLIError.usage("--wan-loss: a percent, 0 to 100") }
                return percent
            } ?? 0
        } else if wanLoss != nil {
            throw CLIError.usage("--wan-loss goes with --wan-round-trips")
        }
        try write(layout, policy: policyFile.map { try FileIO.read($0, byteCountMax: 1 << 20) } ?? Array(DefaultPolicy.json.utf8), force: force)
        Output.line("wrote a federation of \(layout.nodes.count) nodes (\(regions.map(\.rawValue).joined(separator: ", "))) to \(directory)")
    }

    /// `eu=192.168.56.11,us=…`: an IPv4 address per region of the layout.
    static func regionHosts(_ text: String, regions: [RegionID]) throws -> [RegionID: String] {
        var hosts: [RegionID: String] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=").map(String.init)
            guard parts.count == 2, let region = try? RegionID(parts[0]), regions.contains(region) else {
                throw CLIError.usage("--hosts: '\(item)' is not REGION=ADDRESS for a region of --regions")
            }
            guard parts[1].split(separator: ".").count == 4, (try? SocketAddress(host: parts[1], port: 1)) != nil else {
                throw CLIError.usage("--hosts: '\(parts[1])' is not an IPv4 address")
            }
            hosts[region] = parts[1]
        }
        return hosts
    }

    /// `eu-us=80,us-br=120,*=40`: the round trip of every pair of `regions`
    /// (in the config's `eu-us` form), `*` for the pairs not named; a pair
    /// without either is left out (not shaped).
    static func roundTrips(_ text: String, regions: [RegionID]) throws -> [String: Int] {
        var named: [Set<String>: Int] = [:]
        var otherwise: Int?
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=")
            guard parts.count == 2, let milliseconds = Int(parts[1]), (0...60_000).contains(milliseconds) else {
                throw CLIError.usage("--wan-round-trips: '\(item)' is not PAIR=MILLISECONDS (such as eu-us=80, or *=40)")
            }
            if parts[0] == "*" {
                otherwise = milliseconds
                continue
            }
            let pair = parts[0].split(separator: "-").map(String.init)
            guard pair.count == 2, pair[0] != pair[1] else { throw CLIError.usage("--wan-round-trips: '\(parts[0])' is not a pair such as eu-us") }
            named[Set(pair)] = milliseconds
        }
        var roundTrips: [String: Int] = [:]
        for (index, first) in regions.enumerated() {
            for second in regions.dropFirst(index + 1) {
                let pair = [first.rawValue, second.rawValue].sorted()
                if let milliseconds = named[Set(pair)] ?? otherwise { roundTrips[pair.joined(separator: "-")] = milliseconds }
            }
        }
        return roundTrips
    }

    static func write(_ layout: Layout, policy: [UInt8], force: Bool) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: layout.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        func file(_ name: String) -> String { (layout.directory as NSString).appendingPathComponent(name) }

        let masterText = MasterKey.generateBase64()
        try FileIO.writeAtomically(Array((masterText + "\n").utf8), to: file("master.key"), mode: 0o600, replacing: force)
        let master = try MasterKey(base64: masterText)
        try FileIO.writeAtomically(policy, to: file("policy.json"), mode: 0o644, replacing: force)

        var tokens: [(String, String)] = []
        var principals: [[String: Any]] = []
        let roles: [(name: String, roles: [String])] = [
            ("ingest", ["ingest"]), ("serve", ["serve"]), ("analyst", ["analyst"]), ("privacy_officer", ["privacy_officer"]),
            ("privacy_officer_2", ["privacy_officer"]), ("privacy_officer_3", ["privacy_officer"]), ("admin", ["admin"]), ("node", ["node"]),
        ]
        for entry in roles {
            let token = Base64.encodeURL(SecureRandom.bytes(32))
            tokens.append((entry.name, token))
            principals.append(["name": entry.name, "token_sha256": Hex.encode(SHA256.hash(token)), "roles": entry.roles])
        }
        try writeJSON(["principals": principals], to: file("principals.json"), mode: 0o644, replacing: force)
        try writeJSON(Dictionary(uniqueKeysWithValues: tokens), to: file("tokens.json"), mode: 0o600, replacing: force)

        let authority = layout.tls ? try makeAuthority(in: layout.directory, replacing: force) : nil
        var keyrings: [RegionID: Keyring] = [:]
        var rosters: [RegionID: [[String: Any]]] = [:]
        var first: Keyring?
        let now = Int64(Date().timeIntervalSince1970)
        for node in layout.nodes {
            let nodeDirectory = file(node.name.rawValue)
            try manager.createDirectory(atPath: nodeDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let keyring = Keyring.generate(region: node.region, node: node.name, createdAt: now, inheriting: keyrings[node.region] ?? first)
            keyrings[node.region] = keyrings[node.region] ?? keyring
            first = first ?? keyring
            try KeyringFile.save(keyring, path: (nodeDirectory as NSString).appendingPathComponent("\(node.name).keyring"),
                                 master: master, replacing: force)
            let seeds = layout.nodes.filter { $0.name != node.name }.compactMap { layout.gossipAddress($0.index) }
            var configuration: [String: Any] = [
                "node": node.name.rawValue,
                "region": node.region.rawValue,
                "data_dir": "data",
                "keyring": "\(node.name).keyring",
                "master_key_file": "../master.key",
                "policy": "../policy.json",
                "principals": "../principals.json",
                "http": ["address": layout.httpAddress(node.index)],
            ]
            if let address = layout.gossipAddress(node.index) {
                configuration["gossip"] = ["address": address, "seeds": seeds, "profile": "loopback"]
                if !layout.wanRoundTrips.isEmpty {
                    // Probes that wait for a round trip across the slowest pair (as cluster/netns sets them).
                    let timeout = max(400, 2 * (layout.wanRoundTrips.values.max() ?? 0))
                    configuration["gossip"] = ["address": address, "seeds": seeds, "profile": "loopback",
                                               "probe_interval_ms": timeout + 100, "probe_timeout_ms": timeout]
                }
            }
            if let wan = layout.wanSection { configuration["wan"] = wan }
            if let authority {
                configuration["tls"] = try issueCertificate(for: node.name, hosts: [layout.host(node.index)], in: nodeDirectory,
                                                            by: authority, replacing: force)
            } else {
                configuration["tls"] = ["plaintext": true]
            }
            if let address = layout.channelAddress(node.index) {
                configuration["region_log"] = ["address": address, "roster": "../\(node.region).roster.json"]
                // Every region's roster: who may speak for a region in the federation (FederationTrust).
                configuration["federation"] = ["rosters": Array(Set(layout.nodes.map(\.region))).sorted().map { "../\($0).roster.json" }]
                rosters[node.region, default: []].append(["name": node.name.rawValue, "channel": address,
                                                          "public_key": Base64.encodeURL(try keyring.signingKey().publicKey.rawRepresentation)])
            }
            try writeJSON(configuration, to: (nodeDirectory as NSString).appendingPathComponent("config.json"), mode: 0o644, replacing: force)
        }
        for (region, nodes) in rosters {
            try writeJSON(["region": region.rawValue, "nodes": nodes], to: file("\(region).roster.json"), mode: 0o644, replacing: force)
        }
    }

    /// A local certificate authority: DIR/ca.pem and DIR/ca-key.pem (0600).
    static func makeAuthority(in directory: String, replacing: Bool) throws -> IssuedCertificate {
        let authority = try CertificateIssuer.makeAuthority(commonName: "Domicile local CA")
        let file = { (name: String) in (directory as NSString).appendingPathComponent(name) }
        try FileIO.writeAtomically(Array(authority.keyPEM.utf8), to: file("ca-key.pem"), mode: 0o600, replacing: replacing)
        try FileIO.writeAtomically(Array(authority.certificatePEM.utf8), to: file("ca.pem"), mode: 0o644, replacing: replacing)
        return authority
    }

    /// A certificate for node `name` on `hosts` (its subject alternative
    /// names; loopback added), written in its directory; the config's `tls` section.
    static func issueCertificate(for name: NodeName, hosts: [String], in nodeDirectory: String, by authority: IssuedCertificate,
                                 replacing: Bool) throws -> [String: Any] {
        let names = Array(Set(hosts + ["127.0.0.1", "localhost"])).sorted()
        let issued = try CertificateIssuer.issue(commonName: name.rawValue, hosts: names, by: authority)
        let file = { (suffix: String) in (nodeDirectory as NSString).appendingPathComponent("\(name)\(suffix)") }
        try FileIO.writeAtomically(Array(issued.keyPEM.utf8), to: file("-key.pem"), mode: 0o600, replacing: replacing)
        try FileIO.writeAtomically(Array(issued.certificatePEM.utf8), to: file(".pem"), mode: 0o644, replacing: replacing)
        return ["cert_file": "\(name).pem", "key_file": "\(name)-key.pem", "ca_file": "../ca.pem", "min_version": "1.3"]
    }

    static func writeJSON(_ object: Any, to path: String, mode: mode_t, replacing: Bool) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try FileIO.writeAtomically(Array(data) + [0x0A], to: path, mode: mode, replacing: replacing)
    }
}
