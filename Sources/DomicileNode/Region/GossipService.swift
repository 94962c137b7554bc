import DomicileCrypto
import DomicileGossip
import DomicileModel
import DomicileNet
import Foundation

/// Runs the node's two membership pools — its region (LAN timings, region
/// gossip key) and the federation (WAN timings, federation gossip key) —
/// over one UDP socket, with push-pull state exchanges over TCP on the same
/// port. The protocol is the pure `MembershipInstance`; this shell only
/// performs its directives: encrypt and send, exchange state, keep time.
final class GossipService: Sendable {
    struct Settings: Sendable {
        var region: MembershipSettings
        var federation: MembershipSettings
        /// Push-pull: connect, send and receive within this.
        var pushPullTimeoutMilliseconds: Int64 = 2_000
        /// Largest push-pull frame accepted.
        var frameBytesMax = 4 * 1_024 * 1_024
        /// Push-pull connections served at once, and started at once.
        var pushPullConnectionsMax = 16
        /// Delays and loss to the peers of other regions (`wan`); nil: none.
        var links: LinkShaper?
    }

    private struct PoolState: Sendable {
        var instance: MembershipInstance
        var nextTick: Int64 = 0
    }

    let identity: MemberIdentity
    private let settings: Settings
    private let socket: DatagramSocket
    private let listener: FramedListener
    private let regionKeys: KeySet
    private let federationKeys: KeySet
    private let pools: Locked<[Pool: PoolState]>
    private let stopping = Locked(false)
    /// Wakes the ticker when a pool asks for an earlier tick, or at stop.
    private let tickWake = DispatchSemaphore(value: 0)
    private let threadsDone = DispatchGroup()
    private let addresses = Locked<[String: SocketAddress]>([:])
    private let logger: Logger
    let counters = Locked(Counters())
    /// Where the round trips of the federation pool's direct probes go.
    private let roundTrips: RoundTrips?
    /// The federation pool's direct probes awaiting their ack, by sequence number.
    private let probesInFlight = Locked<[UInt32: ProbeInFlight]>([:])

    private struct ProbeInFlight: Sendable {
        let target: SocketAddress
        let sentNanoseconds: UInt64
    }

    struct Counters: Sendable {
        var packetsSent = 0
        var packetsReceived = 0
        var packetsDropped: [String: Int] = [:]
        var pushPulls = 0
        var pushPullFailures = 0
    }

    /// UDP, and TCP on the same port number (as memberlist does). With port
    /// 0 the kernel picks a free UDP port that may be taken for TCP: then a
    /// few other ports are tried.
    private static func bindPair(_ bind: SocketAddress, settings: Settings) throws -> (DatagramSocket, FramedListener) {
        var attempt = 1
        while true {
            let socket = try DatagramSocket(bind: bind, receiveTimeoutMilliseconds: 200, links: settings.links)
            do {
                return (socket, try FramedListener(bind: socket.localAddress, connectionsMax: settings.pushPullConnectionsMax,
                                                   frameBytesMax: settings.frameBytesMax,
                                                   timeoutMilliseconds: settings.pushPullTimeoutMilliseconds, name: "gossip-push-pull",
                                                   links: settings.links))
            } catch {
                // The UDP socket closes when it goes out of scope.
                guard bind.port == 0, attempt < 10 else { throw error }
                attempt += 1
            }
        }
    }

    /// Binds the UDP socket and the TCP listener on `bind`; others reach this
    /// node at `advertise` (the bound address unless configured).
    /// `bootID` is the node's (the one it logs and `/v1/cluster` reports);
    /// the federation pool's probes are timed into `roundTrips`.
    init(bind: SocketAddress, advertise: SocketAddress?, name: NodeName, region: RegionID, bootID: UInt64, httpAddress: String,
         seeds: [SocketAddress], keyring keys: (region: KeySet, federation: KeySet), settings: Settings, logger: Logger,
         roundTrips: RoundTrips? = nil) throws {
        self.roundTrips = roundTrips
        (socket, listener) = try Self.bindPair(bind, settings: settings)
        let advertised = advertise ?? socket.localAddress
        identity = MemberIdentity(name: name, region: region, bootID: bootID,
                                  gossipAddress: advertised.description, httpAddress: httpAddress)
        self.settings = settings
        regionKeys = keys.region
        federationKeys = keys.federation
        self.logger = logger
        let now = monotonicMilliseconds()
        let seedAddresses = seeds.map(\.description)
        pools = Locked([
            .region: PoolState(instance: MembershipInstance(me: identity, pool: .region, settings: settings.region, seeds: seedAddresses,
                                                            randomSeed: UInt64.random(in: 0...UInt64.max), now: now)),
            .federation: PoolState(instance: MembershipInstance(me: identity, pool: .federation, settings: settings.federation,
                                                                seeds: seedAddresses, randomSeed: UInt64.random(in: 0...UInt64.max), now: now)),
        ])
    }

    var address: SocketAddress { socket.localAddress }

    func start() {
        let now = monotonicMilliseconds()
        for pool in Pool.allCases { step(pool) { $0.instance.start(now: now) } }
        listener.start { [self] frame in answerPushPull(frame) }
        spawn("gossip-receive") { [self] in
            while !stopping.value {
                if let (bytes, from) = socket.receive() { handlePacket(bytes, from: from) }
            }
        }
        // Sleeps until the earliest tick a pool asked for (no polling).
        spawn("gossip-tick") { [self] in
            while !stopping.value {
                // At least a millisecond, at most a second: a deadline already past never spins the thread.
                let wait = pools.withLock { $0.values.map(\.nextTick).min() ?? 0 } - monotonicMilliseconds()
                _ = tickWake.wait(timeout: .now() + .milliseconds(Int(max(1, min(wait, 1_000)))))
                let now = monotonicMilliseconds()
                for pool in Pool.allCases { step(pool) { now >= $0.nextTick ? $0.instance.tick(now: now) : [] } }
            }
        }
    }

    /// Leaves both pools (others learn at once), then stops the threads.
    func stop() {
        let now = monotonicMilliseconds()
        for pool in Pool.allCases { step(pool) { $0.instance.leave(now: now) } }
        stopping.withLock { $0 = true }
        tickWake.signal()
        threadsDone.wait()
        listener.close()
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        threadsDone.enter()
        let thread = Thread { [threadsDone] in
            nameCurrentThread(name)
            body()
            threadsDone.leave()
        }
        thread.start()
    }

    /// Steps one pool's state machine and performs what it asks. A tick it
    /// schedules earlier than the one the ticker sleeps towards wakes the ticker.
    private func step(_ pool: Pool, _ body: (inout PoolState) -> [MembershipInstance.Directive]) {
        let (directives, earlier) = pools.withLock { state -> ([MembershipInstance.Directive], Bool) in
            let before = state[pool]!.nextTick
            let directives = body(&state[pool]!)
            for case .scheduleTick(let at) in directives { state[pool]!.nextTick = at }
            return (directives, state[pool]!.nextTick < before)
        }
        if earlier { tickWake.signal() }
        perform(directives, pool: pool)
    }

    private func keys(_ pool: Pool) -> KeySet { pool == .region ? regionKeys : federationKeys }

    // MARK: Directives

    private func perform(_ directives: [MembershipInstance.Directive], pool: Pool) {
        for directive in directives {
            switch directive {
            case .send(let messages, let address):
                guard let target = resolve(address) else { continue }
                let packet = GossipCodec.seal(GossipCodec.encode(messages), pool: pool, keys: keys(pool))
                if pool == .federation { timeProbes(messages, to: target) }
                if socket.send(packet, to: target) { counters.withLock { $0.packetsSent += 1 } }
            case .pushPull(let address):
                guard let target = resolve(address) else { continue }
                Task { [self] in await pushPull(pool, with: target) }
            case .changed(let member):
                guard member.name != identity.name else { continue }
                logger.info("member", ["pool": .string(pool.description), "name": .string(member.name.rawValue),
                                       "region": .string(member.identity.region.rawValue), "status": .string(member.status.description),
                                       "incarnation": .int(Int64(member.incarnation))])
            case .scheduleTick:
                break
            }
        }
    }

    private func resolve(_ address: String) -> SocketAddress? {
        if let cached = addresses.withLock({ $0[address] }) { return cached }
        guard let parsed = try? SocketAddress(parsing: address) else { return nil }
        addresses.withLock { cache in
            if cache.count > 65_536 { cache.removeAll() }
            cache[address] = parsed
        }
        return parsed
    }

    private func drop(_ reason: String) {
        counters.withLock { $0.packetsDropped[reason, default: 0] += 1 }
    }

    /// A packet that fails to decrypt or parse is dropped and counted; it
    /// never reaches the state machine.
    private func handlePacket(_ bytes: [UInt8], from address: SocketAddress) {
        counters.withLock { $0.packetsReceived += 1 }
        let pool: Pool
        let messages: [GossipMessage]
        do {
            pool = try GossipCodec.pool(of: bytes)
            let opened = try GossipCodec.open(bytes, keys: keys(pool))
            messages = try GossipCodec.decode(opened.plaintext).messages
        } catch {
            drop(Self.reason(error))
            return
        }
        if pool == .federation { timeAcks(messages, from: address) }
        let now = monotonicMilliseconds()
        step(pool) { $0.instance.receive(messages, from: address.description, now: now) }
    }

    // MARK: Round trips

    /// Notes when this node's direct probes leave (a relayed probe's ack
    /// comes back from the relay, so it is not timed).
    private func timeProbes(_ messages: [GossipMessage], to target: SocketAddress) {
        guard roundTrips != nil else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        for case .ping(let seq, _, let source) in messages where source == identity.name {
            probesInFlight.withLock { probes in
                if probes.count >= 64 { probes.removeAll() }
                probes[seq] = ProbeInFlight(target: target, sentNanoseconds: now)
            }
        }
    }

    /// A probe's ack from the member probed: its round trip, to the member's region.
    private func timeAcks(_ messages: [GossipMessage], from address: SocketAddress) {
        guard let roundTrips else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        for case .ack(let seq, let source) in messages {
            guard let probe = probesInFlight.withLock({ $0.removeValue(forKey: seq) }), probe.target == address,
                  let region = pools.withLock({ $0[.federation]!.instance.members[source]?.identity.region }),
                  region != identity.region else { continue }
            roundTrips.record(milliseconds: Double(now - probe.sentNanoseconds) / 1_000_000, to: region, by: .gossip)
        }
    }

    private static func reason(_ error: any Error) -> String {
        switch error as? GossipCodec.Failure {
        case .undecryptable?: return "undecryptable"
        case .unsupportedVersion?: return "version"
        case .unknownPool?: return "pool"
        case .tooShort?: return "short"
        default: return "malformed"
        }
    }

    // MARK: Push-pull

    private func sealedState(_ pool: Pool) -> [UInt8] {
        let state = pools.withLock { $0[pool]!.instance.pushPullState() }
        return GossipCodec.seal(GossipCodec.encodeState(state), pool: pool, keys: keys(pool))
    }

    private func openState(_ frame: [UInt8], expecting pool: Pool? = nil) -> (Pool, [MemberState])? {
        guard let framePool = try? GossipCodec.pool(of: frame), pool == nil || pool == framePool,
              let opened = try? GossipCodec.open(frame, keys: keys(framePool)),
              let states = try? GossipCodec.decodeState(opened.plaintext, membersMax: settings.region.pushPullMembersMax)
        else { return nil }
        return (framePool, states)
    }

    private func merge(_ states: [MemberState], pool: Pool, from address: String) {
        let now = monotonicMilliseconds()
        step(pool) { $0.instance.receivePushPull(states, from: address, now: now) }
    }

    private func pushPull(_ pool: Pool, with address: SocketAddress) async {
        guard let reply = try? await listener.exchange(sealedState(pool), with: address),
              let (_, states) = openState(reply, expecting: pool) else {
            counters.withLock { $0.pushPullFailures += 1 }
            return
        }
        counters.withLock { $0.pushPulls += 1 }
        merge(states, pool: pool, from: address.description)
    }

    /// A peer's push-pull request: our state for its pool (taken before
    /// merging theirs), or nil to close without answering.
    private func answerPushPull(_ frame: [UInt8]) -> [UInt8]? {
        guard let (pool, states) = openState(frame) else {
            drop("push-pull")
            return nil
        }
        let reply = sealedState(pool)
        merge(states, pool: pool, from: states.first?.identity.gossipAddress ?? "")
        return reply
    }

    // MARK: Views

    /// This node and every member it knows in `pool`.
    func members(of pool: Pool) -> [Member] {
        pools.withLock { state in
            let instance = state[pool]!.instance
            return [instance.selfMember] + instance.members.values.sorted { $0.name < $1.name }
        }
    }

    /// Alive nodes of `region` (from the federation pool), for 421 answers.
    func liveNodes(in region: RegionID) -> [NodeAddress] {
        members(of: .federation).filter { $0.identity.region == region && $0.status == .alive }
            .map { NodeAddress(name: $0.name.rawValue, http: $0.identity.httpAddress) }
    }

    /// Joined the region pool (or there was nobody to join).
    var joined: Bool { pools.withLock { $0[.region]!.instance.joined } }

    func counts(of pool: Pool) -> [MemberStatus: Int] {
        members(of: pool).reduce(into: [:]) { $0[$1.status, default: 0] += 1 }
    }
}
