import DomicileNet
import Foundation

/// A region's node processes, which the nemesis kills, pauses and restarts.
public final class RegionNodes: @unchecked Sendable {
    public let federation: FederationFixture
    public let network: NamespaceNetwork?
    private let lock = NSLock()
    private var processes: [String: NodeProcess] = [:]
    private var paused: Set<String> = []
    /// Every process started, killed ones too, for their logs.
    private var started: [NodeProcess] = []
    private var addresses: [String: SocketAddress] = [:]

    public init(federation: FederationFixture, network: NamespaceNetwork?) {
        self.federation = federation
        self.network = network
    }

    public var names: [String] { federation.nodeNames }

    public func index(of node: String) -> Int { (names.firstIndex(of: node) ?? 0) + 1 }

    /// The node's HTTP address as its latest start logged it.
    public func address(_ node: String) -> SocketAddress? {
        lock.lock()
        defer { lock.unlock() }
        return addresses[node]
    }

    public func start(_ node: String) throws {
        let process = try federation.start(node, launcher: network?.launcher(index(of: node)) ?? [])
        lock.lock()
        processes[node] = process
        started.append(process)
        addresses[node] = process.address
        paused.remove(node)
        lock.unlock()
    }

    public func startAll() throws {
        for node in names { try start(node) }
    }

    /// Whether the node runs and is not stopped.
    public func isServing(_ node: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return processes[node] != nil && !paused.contains(node)
    }

    public func kill(_ node: String) {
        lock.lock()
        let process = processes.removeValue(forKey: node)
        paused.remove(node)
        lock.unlock()
        process?.kill()
    }

    public func pause(_ node: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let process = processes[node] else { return }
        process.process.signal(SIGSTOP)
        paused.insert(node)
    }

    public func resume(_ node: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let process = processes[node], paused.remove(node) != nil else { return }
        process.process.signal(SIGCONT)
    }

    /// Resumes and kills every node (the end of a run).
    public func stopAll() {
        for node in names {
            resume(node)
            kill(node)
        }
    }

    /// For each log line containing `text`, the `count` lines the same process logged before it
    /// (leaving out request lines, membership changes and refusals for want of a majority).
    public func logContext(of text: String, before count: Int) -> [String] {
        lock.lock()
        let all = started
        lock.unlock()
        let noise = ["\"event\":\"http\"", "\"event\":\"member\"", "\"event\":\"no quorum\""]
        return all.flatMap { process -> [String] in
            let lines = process.logLines.filter { line in !noise.contains { line.contains($0) } }
            return lines.indices.filter { lines[$0].contains(text) }.flatMap { index in
                lines[max(0, index - count)...index].map { "\(process.name): \($0)" }
            }
        }
    }

    /// The log lines of every process started so far that contain `text`, with the node's name.
    public func logLines(containing text: String) -> [String] {
        lock.lock()
        let all = started
        lock.unlock()
        return all.flatMap { process in process.logLines.filter { $0.contains(text) }.map { "\(process.name): \($0)" } }
    }
}
