import DomicileModel
import DomicileNet

/// Which nodes a call is sent to, in order: the nodes a 421 named for the
/// call's region (when it names one), then the seeds, starting with the one
/// that last answered. Shared by the clients `withToken` makes.
final class Routing: Sendable {
    private struct State {
        var seeds: [SocketAddress]
        /// The seed that last answered: tried first.
        var preferredSeed = 0
        /// Each region's nodes as the last 421 about it named them.
        var regionNodes: [String: [SocketAddress]] = [:]
    }

    private let state: Locked<State>

    init(seeds: [SocketAddress]) {
        precondition(!seeds.isEmpty, "a client needs a seed")
        state = Locked(State(seeds: seeds))
    }

    /// The nodes to try for a call about `region` (nil: any region will do), best first, each once.
    func candidates(for region: String?) -> [SocketAddress] {
        state.withLock { state in
            let seeds = Array(state.seeds[state.preferredSeed...] + state.seeds[..<state.preferredSeed])
            let known = region.flatMap { state.regionNodes[$0] } ?? []
            var seen = Set<SocketAddress>()
            return (known + seeds).filter { seen.insert($0).inserted }
        }
    }

    /// `node` answered: a seed becomes the first one tried.
    func answered(_ node: SocketAddress) {
        state.withLock { state in
            if let index = state.seeds.firstIndex(of: node) { state.preferredSeed = index }
        }
    }

    /// A 421 named `nodes` as `region`'s: later calls about that region go there first.
    func learn(region: String, nodes: [SocketAddress]) {
        guard !nodes.isEmpty else { return }
        state.withLock { $0.regionNodes[region] = nodes }
    }

    /// The region a pid belongs to (`psn:v{n}:{region}:…`), or nil if it does not look like one.
    static func region(ofPID pid: String) -> String? {
        let parts = pid.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "psn", !parts[2].isEmpty else { return nil }
        return String(parts[2])
    }
}
