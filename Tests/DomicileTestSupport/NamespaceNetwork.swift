import DomicileNet
import Foundation

/// A private network for a region's nodes, so that one node can be cut off
/// from the others while the test still reaches all of them: each node runs
/// in its own network namespace at 10.213.S.i, joined to the others by a
/// bridge in a hub namespace; the test process reaches the bridge through a
/// veth pair at 10.213.S.254. Cutting node i off adds blackhole routes, in
/// i's namespace to every other node and in theirs to i: everything between
/// the nodes stops (the region channel, gossip and forwarding alike), the
/// test's own requests still arrive. Needs root and `ip` (iproute2); where
/// either is missing, `make` says why and the run goes on without partitions.
public final class NamespaceNetwork: @unchecked Sendable {
    public static let ipTool = "/usr/sbin/ip"
    static let prefix = "domj-"

    let tag: String
    let subnet: Int
    public let nodeCount: Int
    private var cut: Set<Int> = []

    /// A network for `nodeCount` nodes, or why there cannot be one.
    public static func make(nodeCount: Int) -> Result<NamespaceNetwork, FixtureError> {
        guard geteuid() == 0 else { return .failure(FixtureError(description: "not root: network namespaces cannot be created")) }
        guard FileManager.default.isExecutableFile(atPath: ipTool) else {
            return .failure(FixtureError(description: "\(ipTool) (iproute2) is missing"))
        }
        removeAbandoned()
        let network = NamespaceNetwork(nodeCount: nodeCount)
        do {
            try network.build()
            return .success(network)
        } catch let error as FixtureError {
            network.tearDown()
            return .failure(error)
        } catch {
            network.tearDown()
            return .failure(FixtureError(description: "\(error)"))
        }
    }

    private init(nodeCount: Int) {
        self.nodeCount = nodeCount
        tag = "\(getpid())x\(Int.random(in: 0..<10_000))"
        subnet = Int.random(in: 1...250)
    }

    deinit { tearDown() }

    var hub: String { "\(Self.prefix)\(tag)-hub" }
    /// The command that runs a program in the hub namespace, where the bridge `br0` joins every node.
    public var hubLauncher: [String] { [Self.ipTool, "netns", "exec", hub] }
    func namespace(_ index: Int) -> String { "\(Self.prefix)\(tag)-n\(index)" }
    /// Interface names have at most 15 bytes: a short per-network suffix.
    private var short: String { String(tag.suffix(6)).replacingOccurrences(of: "x", with: "") }

    /// Node `index`'s address (1-based).
    public func host(_ index: Int) -> String { "10.213.\(subnet).\(index)" }
    public var testHost: String { "10.213.\(subnet).254" }

    /// The command that starts node `index` inside its namespace (`ip netns exec` execs it: the pid is the node's).
    public func launcher(_ index: Int) -> [String] { [Self.ipTool, "netns", "exec", namespace(index)] }

    private func build() throws {
        try Self.ip(["netns", "add", hub])
        try Self.ip(["-n", hub, "link", "add", "br0", "type", "bridge"])
        try Self.ip(["-n", hub, "link", "set", "br0", "up"])
        let rootSide = "dj\(short)r", rootPeer = "dj\(short)h"
        try Self.ip(["link", "add", rootSide, "type", "veth", "peer", "name", rootPeer])
        try Self.ip(["link", "set", rootPeer, "netns", hub])
        try Self.ip(["-n", hub, "link", "set", rootPeer, "master", "br0", "up"])
        try Self.ip(["addr", "add", "\(testHost)/24", "dev", rootSide])
        try Self.ip(["link", "set", rootSide, "up"])
        for index in 1...nodeCount {
            let inside = "dj\(short)a\(index)", hubSide = "dj\(short)b\(index)"
            try Self.ip(["netns", "add", namespace(index)])
            try Self.ip(["link", "add", inside, "type", "veth", "peer", "name", hubSide])
            try Self.ip(["link", "set", inside, "netns", namespace(index)])
            try Self.ip(["link", "set", hubSide, "netns", hub])
            try Self.ip(["-n", hub, "link", "set", hubSide, "master", "br0", "up"])
            try Self.ip(["-n", namespace(index), "addr", "add", "\(host(index))/24", "dev", inside])
            try Self.ip(["-n", namespace(index), "link", "set", inside, "up"])
            try Self.ip(["-n", namespace(index), "link", "set", "lo", "up"])
        }
    }

    /// Rewrites every `127.0.0.1:PORT` in the fixture's text files (configs,
    /// rosters, seeds) to the address of the node whose config binds PORT.
    public func rewriteAddresses(in federation: FederationFixture) throws {
        var owner: [String: String] = [:]
        for (offset, node) in federation.nodeNames.enumerated() {
            let data = try Data(contentsOf: URL(fileURLWithPath: federation.configPath(node)))
            for address in Self.ownAddresses(in: try JSONSerialization.jsonObject(with: data)) {
                if let port = address.split(separator: ":").last { owner[String(port)] = host(offset + 1) }
            }
        }
        let files = FileManager.default.enumerator(atPath: federation.directory.path)?.compactMap { $0 as? String } ?? []
        for file in files where !file.contains("/data") {
            let path = federation.directory.file(file)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains("127.0.0.1:") else { continue }
            var rewritten = text
            for (port, address) in owner { rewritten = rewritten.replacingOccurrences(of: "127.0.0.1:\(port)\"", with: "\(address):\(port)\"") }
            try rewritten.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// The addresses a config binds: string values under a key naming an
    /// address (`http.address`, `gossip.address`, …), not lists of others' (seeds).
    static func ownAddresses(in value: Any, key: String = "") -> [String] {
        if let object = value as? [String: Any] {
            return object.flatMap { ownAddresses(in: $0.value, key: $0.key) }
        }
        if let text = value as? String, key.contains("address"), text.hasPrefix("127.0.0.1:") { return [text] }
        return []
    }

    /// Cuts node `index` off from every other node (both directions).
    public func partition(_ index: Int) throws {
        for other in 1...nodeCount where other != index {
            try Self.ip(["-n", namespace(index), "route", "add", "blackhole", "\(host(other))/32"])
            try Self.ip(["-n", namespace(other), "route", "add", "blackhole", "\(host(index))/32"])
        }
        cut.insert(index)
    }

    public func heal(_ index: Int) throws {
        guard cut.remove(index) != nil else { return }
        for other in 1...nodeCount where other != index {
            try Self.ip(["-n", namespace(index), "route", "del", "blackhole", "\(host(other))/32"])
            try Self.ip(["-n", namespace(other), "route", "del", "blackhole", "\(host(index))/32"])
        }
    }

    /// Cuts the nodes of `group` off from every node outside it (both
    /// directions); they still reach each other (a region partitioned away).
    public func partition(group: Set<Int>) throws {
        for inside in group.sorted() {
            for outside in 1...nodeCount where !group.contains(outside) {
                try Self.ip(["-n", namespace(inside), "route", "add", "blackhole", "\(host(outside))/32"])
                try Self.ip(["-n", namespace(outside), "route", "add", "blackhole", "\(host(inside))/32"])
            }
        }
    }

    public func heal(group: Set<Int>) throws {
        for inside in group.sorted() {
            for outside in 1...nodeCount where !group.contains(outside) {
                try Self.ip(["-n", namespace(inside), "route", "del", "blackhole", "\(host(outside))/32"])
                try Self.ip(["-n", namespace(outside), "route", "del", "blackhole", "\(host(inside))/32"])
            }
        }
    }

    /// Deletes the namespaces (which deletes their interfaces, and the veth ends in ours).
    public func tearDown() {
        for name in [hub] + (1...max(nodeCount, 1)).map(namespace) { _ = try? Self.ip(["netns", "del", name]) }
    }

    /// Namespaces left by a run whose process died without tearing down.
    static func removeAbandoned() {
        guard let listing = try? run([ipTool, "netns", "list"]) else { return }
        for line in listing.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count).prefix { $0.isNumber }),
                  kill(pid, 0) != 0 else { continue }
            _ = try? ip(["netns", "del", name])
        }
    }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String { try run([ipTool] + arguments) }

    @discardableResult
    static func run(_ command: [String]) throws -> String {
        let directory = TemporaryDirectory("domicile-ip")
        let process = try RunningProcess(command[0], Array(command.dropFirst()), stderrPath: directory.file("stderr"))
        let status = process.wait()
        guard status == 0 else {
            let errors = (try? String(contentsOfFile: directory.file("stderr"), encoding: .utf8)) ?? ""
            throw FixtureError(description: "\(command.joined(separator: " ")) failed (\(status)): \(errors)")
        }
        return process.output.joined(separator: "\n")
    }
}
