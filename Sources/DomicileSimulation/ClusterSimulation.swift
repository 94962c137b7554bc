import DomicileGossip
import DomicileModel

/// Many membership instances in one process, on a virtual clock, over a
/// simulated network with per-link latency, loss, partitions, stalled nodes
/// and crashes. Every choice comes from one seeded generator, so a run —
/// and a failure — replays exactly from its seed (TigerBeetle's VOPR and
/// FoundationDB's simulation work the same way).
public final class ClusterSimulation {
    /// One-way latency of a link, drawn uniformly from the range (milliseconds).
    public struct Link: Sendable {
        public var minimumMilliseconds: Int64
        public var maximumMilliseconds: Int64

        public init(_ minimum: Int64, _ maximum: Int64) {
            minimumMilliseconds = minimum
            maximumMilliseconds = max(minimum, maximum)
        }
    }

    public struct Configuration {
        public var nodeCount: Int
        public var settings: MembershipSettings
        public var seed: UInt64
        /// Probability that a UDP packet is lost.
        public var lossRate = 0.0
        /// Latency of the link from one node to another.
        public var latency: (Int, Int) -> Link = { _, _ in Link(1, 5) }
        /// Start from a settled cluster (every node knows every other), or
        /// join through seeds (the first three nodes).
        public var startConverged = true
        public var pool = Pool.region

        public init(nodeCount: Int, settings: MembershipSettings, seed: UInt64) {
            self.nodeCount = nodeCount
            self.settings = settings
            self.seed = seed
        }
    }

    public struct Statistics: Sendable {
        public var packetsSent = 0
        public var packetsLost = 0
        public var packetsBlocked = 0
        public var bytesSent = 0
        public var pushPulls = 0
        public var events = 0
    }

    enum Event {
        case tick(node: Int, incarnation: Int)
        case deliver(node: Int, incarnation: Int, messages: [GossipMessage], from: String)
        case pushPull(node: Int, incarnation: Int, states: [MemberState], from: String)
    }

    struct Node {
        var instance: MembershipInstance
        var crashed = false
        var stalledUntil: Int64 = 0
        /// Bumped on restart, so events meant for the previous life are dropped.
        var life = 0
        var scheduledTick: Int64 = .max
    }

    public let configuration: Configuration
    public private(set) var now: Int64 = 0
    public private(set) var statistics = Statistics()
    var nodes: [Node] = []
    var queue = EventQueue<Event>()
    var rng: SeededRandom
    var addressIndex: [String: Int] = [:]
    var partition: [Int]?
    /// Called for every status change any node records: (observer, member, time).
    public var onChange: ((Int, Member, Int64) -> Void)?

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        rng = SeededRandom(seed: configuration.seed)
        let identities = (0..<configuration.nodeCount).map { Self.identity($0, boot: 1) }
        let seeds = identities.prefix(3).map(\.gossipAddress)
        for (index, identity) in identities.enumerated() {
            addressIndex[identity.gossipAddress] = index
            let instance = MembershipInstance(me: identity, pool: configuration.pool, settings: configuration.settings,
                                              seeds: configuration.startConverged ? [] : seeds, randomSeed: rng.next(), now: 0)
            nodes.append(Node(instance: instance))
        }
        if configuration.startConverged {
            let states = identities.map { MemberState(identity: $0, incarnation: 0, status: .alive) }
            for index in nodes.indices { nodes[index].instance.adopt(states, now: 0) }
        }
        for index in nodes.indices {
            execute(nodes[index].instance.start(now: 0), node: index)
        }
    }

    static func identity(_ index: Int, boot: UInt64) -> MemberIdentity {
        MemberIdentity(name: try! NodeName("n\(index)"), region: try! RegionID("sim"), bootID: boot,
                       gossipAddress: "sim:\(index)", httpAddress: "sim:\(index)")
    }

    public static func name(_ index: Int) -> NodeName { try! NodeName("n\(index)") }

    // MARK: Running

    /// Processes events up to `time` (inclusive).
    public func run(until time: Int64) {
        while let next = queue.nextTime, next <= time {
            let (at, event) = queue.pop()!
            now = at
            process(event)
        }
        now = max(now, time)
    }

    /// Runs until `condition` holds (checked after each event) or `limit`;
    /// returns whether it held.
    @discardableResult
    public func run(until limit: Int64, stoppingWhen condition: () -> Bool) -> Bool {
        while let next = queue.nextTime, next <= limit {
            let (at, event) = queue.pop()!
            now = at
            process(event)
            if condition() { return true }
        }
        now = max(now, limit)
        return condition()
    }

    private func process(_ event: Event) {
        statistics.events += 1
        switch event {
        case .tick(let index, let life):
            guard nodes[index].life == life, !nodes[index].crashed else { return }
            guard nodes[index].scheduledTick == now else { return }  // superseded by an earlier tick
            if deferIfStalled(event, index) { return }
            nodes[index].scheduledTick = .max
            execute(nodes[index].instance.tick(now: now), node: index)
        case .deliver(let index, let life, let messages, let from):
            guard nodes[index].life == life, !nodes[index].crashed else { return }
            if deferIfStalled(event, index) { return }
            execute(nodes[index].instance.receive(messages, from: from, now: now), node: index)
        case .pushPull(let index, let life, let states, let from):
            guard nodes[index].life == life, !nodes[index].crashed else { return }
            if deferIfStalled(event, index) { return }
            execute(nodes[index].instance.receivePushPull(states, from: from, now: now), node: index)
        }
    }

    /// A stalled node (a long GC pause, an overloaded host) handles nothing
    /// until the stall ends; what arrives meanwhile waits, in order.
    private func deferIfStalled(_ event: Event, _ index: Int) -> Bool {
        guard nodes[index].stalledUntil > now else { return false }
        if case .tick = event {
            nodes[index].scheduledTick = nodes[index].stalledUntil
        }
        queue.push(event, at: nodes[index].stalledUntil)
        return true
    }

    private func execute(_ directives: [MembershipInstance.Directive], node index: Int) {
        for directive in directives {
            switch directive {
            case .send(let messages, let address):
                send(messages, from: index, to: address)
            case .pushPull(let address):
                pushPull(from: index, to: address)
            case .changed(let member):
                onChange?(index, member, now)
            case .scheduleTick(let at):
                guard at < nodes[index].scheduledTick || nodes[index].scheduledTick < now else { continue }
                nodes[index].scheduledTick = at
                queue.push(.tick(node: index, incarnation: nodes[index].life), at: at)
            }
        }
    }

    private func reachable(_ from: Int, _ to: Int) -> Bool {
        guard !nodes[to].crashed else { return false }
        guard let partition else { return true }
        return partition[from] == partition[to]
    }

    private func delay(_ from: Int, _ to: Int) -> Int64 {
        let link = configuration.latency(from, to)
        return Int64.random(in: link.minimumMilliseconds...link.maximumMilliseconds, using: &rng)
    }

    private func send(_ messages: [GossipMessage], from: Int, to address: String) {
        guard let target = addressIndex[address] else { return }
        statistics.packetsSent += 1
        statistics.bytesSent += GossipCodec.packetOverhead + 1 + messages.reduce(0) { $0 + GossipCodec.encodedSize($1) }
        guard reachable(from, target) else {
            statistics.packetsBlocked += 1
            return
        }
        if configuration.lossRate > 0 && Double.random(in: 0..<1, using: &rng) < configuration.lossRate {
            statistics.packetsLost += 1
            return
        }
        queue.push(.deliver(node: target, incarnation: nodes[target].life, messages: messages,
                            from: nodes[from].instance.me.gossipAddress), at: now + delay(from, target))
    }

    /// TCP: no loss, but no connection across a partition or to a crashed node.
    private func pushPull(from: Int, to address: String) {
        guard let target = addressIndex[address], reachable(from, target) else { return }
        statistics.pushPulls += 1
        let there = delay(from, target)
        let back = there + delay(target, from)
        let local = nodes[from].instance.pushPullState()
        let remote = nodes[target].instance.pushPullState()
        statistics.bytesSent += GossipCodec.encodeState(local).count + GossipCodec.encodeState(remote).count
        queue.push(.pushPull(node: target, incarnation: nodes[target].life, states: local,
                             from: nodes[from].instance.me.gossipAddress), at: now + there)
        queue.push(.pushPull(node: from, incarnation: nodes[from].life, states: remote,
                             from: nodes[target].instance.me.gossipAddress), at: now + back)
    }

    // MARK: Faults

    /// The process dies: it sends and handles nothing more.
    public func crash(_ index: Int) {
        nodes[index].crashed = true
    }

    /// Starts a crashed node again: a new process, same name, new boot id,
    /// joining through `seeds` (other nodes' indices).
    public func restart(_ index: Int, seeds: [Int]) {
        let boot = nodes[index].instance.me.bootID + 1
        nodes[index].life += 1
        nodes[index].crashed = false
        nodes[index].scheduledTick = .max
        nodes[index].instance = MembershipInstance(me: Self.identity(index, boot: boot), pool: configuration.pool,
                                                   settings: configuration.settings,
                                                   seeds: seeds.map { nodes[$0].instance.me.gossipAddress },
                                                   randomSeed: rng.next(), now: now)
        execute(nodes[index].instance.start(now: now), node: index)
    }

    /// The node stops handling anything for `milliseconds`, then catches up.
    public func stall(_ index: Int, forMilliseconds milliseconds: Int64) {
        nodes[index].stalledUntil = now + milliseconds
    }

    public func leave(_ index: Int) {
        execute(nodes[index].instance.leave(now: now), node: index)
    }

    /// Nodes in different groups cannot reach each other until `heal`.
    public func partition(_ groups: [[Int]]) {
        var labels = [Int](repeating: -1, count: nodes.count)
        for (label, group) in groups.enumerated() { for index in group { labels[index] = label } }
        partition = labels
    }

    public func heal() { partition = nil }

    // MARK: Observing

    public var nodeCount: Int { nodes.count }
    public func isCrashed(_ index: Int) -> Bool { nodes[index].crashed }
    public func instance(_ index: Int) -> MembershipInstance { nodes[index].instance }

    /// How `observer` sees `member` (nil: not in its member list).
    public func status(of member: Int, seenBy observer: Int) -> MemberStatus? {
        nodes[observer].instance.members[Self.name(member)]?.status
    }

    /// Nodes that are running (not crashed).
    public var runningNodes: [Int] { nodes.indices.filter { !nodes[$0].crashed } }
}
