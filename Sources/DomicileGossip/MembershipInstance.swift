import DomicileModel
import Foundation

/// One node's membership in one pool: SWIM (probe, indirect probe,
/// suspicion with incarnations and refutation, dead, leave; piggybacked
/// dissemination) with the Lifeguard extensions (local health multiplier,
/// dynamic suspicion timeouts with confirmations, buddy system, nacks).
///
/// A value type that does no I/O: an event goes in (`start`, `tick`,
/// `receive`, `receivePushPull`, `leave`), directives come out, always
/// ending with the next tick to schedule. Time is the caller's clock in
/// milliseconds; randomness is a generator seeded by the caller, so a run
/// replays from its seed (DomicileSimulation does exactly that).
public struct MembershipInstance: Sendable {
    public enum Directive: Sendable, Equatable {
        /// Send these messages, in one packet, to a gossip address.
        case send([GossipMessage], to: String)
        /// Exchange full state with the node at this address (TCP).
        case pushPull(with: String)
        /// A member's status or incarnation changed (this node included).
        case changed(Member)
        /// Call `tick` at this time.
        case scheduleTick(at: Int64)
    }

    public let settings: MembershipSettings
    public let pool: Pool
    public internal(set) var me: MemberIdentity
    public internal(set) var incarnation: UInt64 = 0
    /// Every other member this node knows, dead ones until they are reaped.
    public internal(set) var members: [NodeName: Member] = [:]
    /// Lifeguard's local health multiplier, 0 when healthy.
    public internal(set) var awareness = 0
    /// True once a push-pull succeeded (or there was no one to join).
    public internal(set) var joined: Bool
    public internal(set) var hasLeft = false
    public internal(set) var counters = Counters()

    public struct Counters: Sendable, Equatable {
        public var probes = 0
        public var indirectProbes = 0
        public var suspicions = 0
        public var refutations = 0
        public var declaredDead = 0
    }

    var rng: SeededRandom
    /// Members in probe order; shuffled when a round is done. Dead members
    /// stay until reaped and are skipped (as in memberlist).
    var order: [NodeName] = []
    var cursor = 0
    var probe: Probe?
    var suspicions: [NodeName: Suspicion] = [:]
    var relays: [UInt32: Relay] = [:]
    var broadcasts = BroadcastQueue()
    var sequence: UInt32 = 0
    let seeds: [String]
    /// Addresses of members that were reaped, kept `peerMemoryMilliseconds`
    /// (at most `rememberedPeersMax`): rejoin targets once they are no longer
    /// in `members`. Members still in `members` carry their own addresses.
    var remembered: [String: (name: NodeName, at: Int64)] = [:]
    static let rememberedPeersMax = 4_096
    /// Seed addresses whose member is known, learned as members arrive.
    var seedNames: [String: NodeName] = [:]
    /// Dead or left members in the order they died, for reaping in O(1).
    var graveyard: [(name: NodeName, at: Int64)] = []
    var liveCount = 0
    var nextProbeAt: Int64
    var nextGossipAt: Int64
    var nextPushPullAt: Int64
    var nextRejoinAt: Int64
    var nextReapAt: Int64

    public init(me: MemberIdentity, pool: Pool, settings: MembershipSettings, seeds: [String], randomSeed: UInt64, now: Int64) {
        self.me = me
        self.pool = pool
        self.settings = settings
        self.seeds = seeds.filter { $0 != me.gossipAddress }
        rng = SeededRandom(seed: randomSeed)
        joined = self.seeds.isEmpty
        // Stagger the periodic work so nodes started together do not act in lockstep.
        let jitter = { (range: Int64, rng: inout SeededRandom) in Int64.random(in: 0..<max(range, 1), using: &rng) }
        nextProbeAt = now + jitter(settings.probeIntervalMilliseconds, &rng)
        nextGossipAt = now + jitter(settings.gossipIntervalMilliseconds, &rng)
        nextPushPullAt = now + settings.pushPullIntervalMilliseconds + jitter(settings.pushPullIntervalMilliseconds, &rng)
        nextRejoinAt = now + settings.rejoinIntervalMilliseconds
        nextReapAt = now + 1_000
    }

    /// The number of members believed alive or suspect, this node included.
    public var clusterSize: Int { liveCount + 1 }

    /// This node as a member (for views of the pool).
    public var selfMember: Member {
        Member(identity: me, incarnation: incarnation, status: hasLeft ? .left : .alive, statusChangedAt: 0)
    }

    // MARK: Events

    /// Joins through the seeds (a push-pull with each) and schedules the first tick.
    public mutating func start(now: Int64) -> [Directive] {
        var directives = seeds.map { Directive.pushPull(with: $0) }
        directives.append(.scheduleTick(at: nextDeadline(now: now)))
        return directives
    }

    /// Runs whatever is due at `now`.
    public mutating func tick(now: Int64) -> [Directive] {
        var directives: [Directive] = []
        if !hasLeft {
            advanceProbe(now: now, &directives)
            expireRelays(now: now, &directives)
            expireSuspicions(now: now, &directives)
            if now >= nextGossipAt {
                gossip(now: now, &directives)
                nextGossipAt = now + settings.gossipIntervalMilliseconds
            }
            if now >= nextPushPullAt {
                if let peer = randomMember(where: { $0.status.isLive }) { directives.append(.pushPull(with: peer.identity.gossipAddress)) }
                nextPushPullAt = now + pushPullInterval
            }
            if now >= nextRejoinAt {
                if let address = rejoinTarget(now: now) { directives.append(.pushPull(with: address)) }
                nextRejoinAt = now + settings.rejoinIntervalMilliseconds
            }
        }
        if now >= nextReapAt {
            reap(now: now)
            nextReapAt = now + 1_000
        }
        directives.append(.scheduleTick(at: nextDeadline(now: now)))
        return directives
    }

    /// Handles the messages of one packet received from `address`.
    public mutating func receive(_ messages: [GossipMessage], from address: String, now: Int64) -> [Directive] {
        var directives: [Directive] = []
        for message in messages { handle(message, from: address, now: now, &directives) }
        directives.append(.scheduleTick(at: nextDeadline(now: now)))
        return directives
    }

    /// Merges another node's full state (both sides of a push-pull do this).
    public mutating func receivePushPull(_ states: [MemberState], from address: String, now: Int64) -> [Directive] {
        var directives: [Directive] = []
        joined = true
        let sender = states.first?.identity.name ?? me.name
        for state in states {
            switch state.status {
            case .alive:
                applyAlive(incarnation: state.incarnation, identity: state.identity, now: now, &directives)
            case .suspect:
                applyAlive(incarnation: state.incarnation, identity: state.identity, now: now, &directives)
                applySuspect(incarnation: state.incarnation, name: state.identity.name, accuser: sender, now: now, &directives)
            case .dead, .left:
                // Learn the member first (for its address), then its end.
                if members[state.identity.name] == nil && state.identity.name != me.name {
                    insert(state.identity, incarnation: state.incarnation, status: state.status, now: now, &directives)
                } else {
                    applyDead(incarnation: state.incarnation, name: state.identity.name,
                              accuser: state.status == .left ? state.identity.name : sender, now: now, &directives)
                }
            }
        }
        directives.append(.scheduleTick(at: nextDeadline(now: now)))
        return directives
    }

    /// The state this node sends in a push-pull: itself first, then every member.
    public func pushPullState() -> [MemberState] {
        var states = [MemberState(identity: me, incarnation: incarnation, status: hasLeft ? .left : .alive)]
        for name in order.prefix(settings.pushPullMembersMax - 1) {
            guard let member = members[name] else { continue }
            states.append(MemberState(identity: member.identity, incarnation: member.incarnation, status: member.status))
        }
        return states
    }

    /// Takes `states` as the converged view of the pool, without broadcasting
    /// anything: for starting a simulation from a settled cluster (joining
    /// 10,000 nodes one by one would only measure the join).
    public mutating func adopt(_ states: [MemberState], now: Int64) {
        var ignored: [Directive] = []
        for state in states where state.identity.name != me.name && members[state.identity.name] == nil {
            insert(state.identity, incarnation: state.incarnation, status: state.status, now: now, &ignored)
        }
        joined = true
    }

    /// Leaves gracefully: tells the pool, then stops probing.
    public mutating func leave(now: Int64) -> [Directive] {
        var directives: [Directive] = []
        guard !hasLeft else { return [.scheduleTick(at: nextDeadline(now: now))] }
        hasLeft = true
        let message = GossipMessage.dead(incarnation: incarnation, name: me.name, accuser: me.name)
        broadcasts.enqueue(message, about: me.name)
        directives.append(.changed(selfMember))
        // Spread it now rather than at the next gossip round.
        for member in randomMembers(settings.gossipFanout + 2, where: { $0.status.isLive }) {
            directives.append(.send(packet([message], budgetFor: member.identity.gossipAddress), to: member.identity.gossipAddress))
        }
        directives.append(.scheduleTick(at: nextDeadline(now: now)))
        return directives
    }

    /// The earliest time anything is due.
    func nextDeadline(now: Int64) -> Int64 {
        var next = min(nextReapAt, hasLeft ? nextReapAt : min(nextGossipAt, nextPushPullAt, nextRejoinAt))
        if !hasLeft {
            if let probe {
                next = min(next, probe.acked || probe.indirectSent ? probe.endsAt : probe.timeoutAt)
            } else {
                next = min(next, nextProbeAt)
            }
            for suspicion in suspicions.values { next = min(next, suspicion.deadline) }
            for relay in relays.values { next = min(next, relay.deadline) }
        }
        return max(next, now + 1)
    }

    // MARK: Helpers

    mutating func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// memberlist's `pushPullScale`: past 32 members the interval grows with
    /// log2(n), so full-state exchanges do not saturate a large cluster.
    var pushPullInterval: Int64 {
        let size = clusterSize
        guard size > 32 else { return settings.pushPullIntervalMilliseconds }
        let multiplier = (log2(Double(size)) - log2(32)).rounded(.up) + 1
        return Int64(multiplier) * settings.pushPullIntervalMilliseconds
    }

    /// Lifeguard scales probe timing by local health (awareness + 1).
    var healthScale: Int64 { settings.lifeguard ? Int64(awareness + 1) : 1 }

    mutating func adjustAwareness(_ delta: Int) {
        guard settings.lifeguard else { return }
        awareness = min(max(awareness + delta, 0), settings.awarenessMax - 1)
    }

    /// A random member satisfying `predicate`, by sampling the probe order
    /// (bounded tries, then a scan): O(1) on average even at 10,000 members.
    mutating func randomMember(where predicate: (Member) -> Bool) -> Member? {
        guard !order.isEmpty else { return nil }
        for _ in 0..<8 {
            if let member = members[order[Int.random(in: 0..<order.count, using: &rng)]], predicate(member) { return member }
        }
        for name in order { if let member = members[name], predicate(member) { return member } }
        return nil
    }

    /// Up to `count` distinct random members satisfying `predicate`.
    mutating func randomMembers(_ count: Int, where predicate: (Member) -> Bool) -> [Member] {
        guard count > 0, !order.isEmpty else { return [] }
        var chosen: [Member] = []
        var seen = Set<NodeName>()
        var attempts = 0
        while chosen.count < count && attempts < count * 6 && seen.count < order.count {
            attempts += 1
            let name = order[Int.random(in: 0..<order.count, using: &rng)]
            guard seen.insert(name).inserted, let member = members[name], predicate(member) else { continue }
            chosen.append(member)
        }
        if chosen.count < count && order.count <= count * 6 {
            // Small clusters: fill from a full scan so nobody is missed by bad luck.
            for name in order where !seen.contains(name) && chosen.count < count {
                if let member = members[name], predicate(member) { chosen.append(member) }
            }
        }
        return chosen
    }
}
