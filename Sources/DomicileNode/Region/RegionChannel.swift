import DomicileCrypto
import DomicileModel
import DomicileNet
import Foundation

/// The authenticated, encrypted node-to-node channel of one region
/// (docs/FORMATS.md and docs/DECISIONS.md, "Region channel"): persistent
/// TCP connections between named nodes, each opened by a handshake that
/// proves both nodes' Ed25519 keys against a `NodeRoster` and sealed frame
/// by frame under a key derived from the region key. Raft messages go with
/// `send` (dropped when a peer's queue is full), forwarded writes and
/// snapshot chunks with `request` (a reply, a deadline, a typed failure).
///
/// A node dials each peer it sends to once and keeps that connection,
/// redialing with back-off and jitter at the address `resolve` gives at
/// that moment; it accepts the peers' own connections. Identity is the
/// name and key, never the address. One event-loop thread runs every
/// connection; its state below is touched only on that thread.
public final class RegionChannel: StreamTransportDelegate, @unchecked Sendable {
    public enum Failure: Error, Equatable, Sendable {
        /// The peer's queue is full: the request was not sent.
        case queueFull
        /// No reply by the deadline.
        case timeout
        case cancelled
        /// The connection carrying the request closed before the reply.
        case connectionLost
        /// The payload does not fit in one frame.
        case tooLarge
        /// The channel is stopped.
        case closed
    }

    public struct Statistics: Sendable, Equatable {
        /// Connections closed for a peer's bad bytes, by reason.
        public var refusals: [ChannelRefusal: Int] = [:]
        /// Fire-and-forget messages dropped from a full queue.
        public var messagesDropped = 0
        /// Replies dropped because the requester's connection was backed up.
        public var repliesDropped = 0
        /// Peers' requests dropped because `servedRequestsMax` were being handled.
        public var requestsDropped = 0
        /// Connections whose handshake completed, both ways.
        public var connectionsOpened = 0
        public var framesSent = 0
        public var framesReceived = 0
    }

    /// What the channel hands to the node. `message` runs on the loop's
    /// thread and must not block; `request` runs in a task of its own and
    /// its result goes back to the requester.
    public struct Handlers: Sendable {
        public var message: @Sendable (NodeName, [UInt8]) -> Void
        public var request: @Sendable (NodeName, [UInt8]) async -> [UInt8]

        public init(message: @escaping @Sendable (NodeName, [UInt8]) -> Void,
                    request: @escaping @Sendable (NodeName, [UInt8]) async -> [UInt8]) {
            self.message = message
            self.request = request
        }
    }

    public let name: NodeName
    public var localAddress: SocketAddress { transport.localAddress }
    private let transport: StreamTransport
    private let identity: ChannelHandshake.Identity
    private let roster: @Sendable () -> NodeRoster
    private let resolve: @Sendable (NodeName) -> SocketAddress?
    private let handlers: Handlers
    private let settings: Settings
    private let counters = Locked(Statistics())
    private let requestIDs = Locked(UInt64(0))

    // Loop-thread state.
    private var generator: any RandomNumberGenerator
    private var peers: [NodeName: Outbound] = [:]
    private var pumpsScheduled: Set<NodeName> = []
    private var links: [StreamID: Link] = [:]
    private var pending: [UInt64: PendingRequest] = [:]
    /// Requests cancelled before they reached the loop.
    private var cancelledEarly: Set<UInt64> = []
    private static let cancelledEarlyMax = 4_096
    private var recentNonces: Set<[UInt8]> = []
    private var recentNonceOrder: [[UInt8]] = []
    private var stopped = false
    /// Peers' requests whose handler has not answered yet.
    private var serving = 0

    /// Binds `address` and starts the loop. `roster` is asked at every
    /// handshake (so a membership change applies to the next connection),
    /// `resolve` at every dial; `random` draws the back-off jitter.
    public init(region: RegionID, name: NodeName, signing: Ed25519PrivateKey, regionKeys: KeySet, bind address: SocketAddress,
                roster: @escaping @Sendable () -> NodeRoster, resolve: @escaping @Sendable (NodeName) -> SocketAddress?,
                random: any RandomSource, settings: Settings = .lan, handlers: Handlers) throws(SystemError) {
        settings.validate()
        self.name = name
        identity = ChannelHandshake.Identity(region: region, name: name, signing: signing, regionKeys: regionKeys)
        self.roster = roster
        self.resolve = resolve
        self.handlers = handlers
        self.settings = settings
        generator = random.generator()
        transport = try StreamTransport(bind: address, frameBytesMax: settings.frameBytesMax, acceptedMax: settings.acceptedMax,
                                        name: "channel-\(name.rawValue)")
        transport.start(self)
    }

    deinit { transport.stop(waiting: false) }

    public var statistics: Statistics { counters.value }

    /// Queues `payload` for `peer`, fire-and-forget: it may be dropped (a
    /// full queue drops the oldest message), as Raft expects of a network.
    public func send(_ payload: [UInt8], to peer: NodeName) {
        transport.execute { [self] in
            guard !stopped, fits(payload) else { return countDropped() }
            enqueue(ChannelQueue.Item(frame: .message(payload), requestID: nil), to: peer)
        }
    }

    /// Sends `payload` to `peer` and waits for its reply, until `deadline`.
    public func request(_ payload: [UInt8], to peer: NodeName, deadline: ContinuousClock.Instant) async throws(Failure) -> [UInt8] {
        guard fits(payload) else { throw .tooLarge }
        let remaining = ContinuousClock.now.duration(to: deadline).components
        let loopDeadline = monotonicMilliseconds() + max(0, remaining.seconds * 1_000 + remaining.attoseconds / 1_000_000_000_000_000)
        let id = requestIDs.withLock { id -> UInt64 in
            id += 1
            return id
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<[UInt8], Failure>, Never>) in
                let accepted = transport.execute { [self] in
                    start(PendingRequest(peer: peer, deadline: loopDeadline, stream: nil, resume: { continuation.resume(returning: $0) }),
                          id: id, payload: payload)
                }
                if !accepted { continuation.resume(returning: .failure(.closed)) }
            }
        } onCancel: {
            transport.execute { [self] in
                // Not pending: not started yet, or already finished (then the
                // mark is never used; the set is bounded for that case).
                if pending[id] == nil {
                    if cancelledEarly.count >= Self.cancelledEarlyMax { cancelledEarly.removeAll() }
                    cancelledEarly.insert(id)
                }
                finish(id, .failure(.cancelled))
            }
        }
        return try result.get()
    }

    /// Closes every connection, fails what waits with `closed`, stops the loop.
    public func stop() {
        transport.execute { [self] in
            stopped = true
            for id in Array(pending.keys) { finish(id, .failure(.closed)) }
        }
        transport.stop()
    }

    private func fits(_ payload: [UInt8]) -> Bool {
        payload.count + ChannelFrame.headerByteCount + AESGCM.tagByteCount <= settings.frameBytesMax
    }

    // MARK: Queues (loop thread)

    /// The connection this node dials to one peer, and what waits for it.
    private struct Outbound {
        enum State {
            case idle
            case dialing(StreamID)
            case open(StreamID)
            case waiting(until: Int64)
        }

        var state = State.idle
        var attempts = 0
        var queue = ChannelQueue()

        var stream: StreamID? {
            switch state {
            case .dialing(let stream), .open(let stream): stream
            case .idle, .waiting: nil
            }
        }
    }

    private struct PendingRequest {
        let peer: NodeName
        let deadline: Int64
        /// Set once written, so a closed connection fails it at once.
        var stream: StreamID?
        let resume: (Result<[UInt8], Failure>) -> Void
    }

    private func start(_ request: PendingRequest, id: UInt64, payload: [UInt8]) {
        guard !stopped else { return request.resume(.failure(.closed)) }
        guard cancelledEarly.remove(id) == nil else { return request.resume(.failure(.cancelled)) }
        pending[id] = request
        if !enqueue(ChannelQueue.Item(frame: .request(id: id, payload), requestID: id), to: request.peer) {
            finish(id, .failure(.queueFull))
        }
    }

    /// Queues a frame for `peer`, making room by dropping the oldest
    /// message when a bound is hit; false when there is no room for it.
    @discardableResult
    private func enqueue(_ item: ChannelQueue.Item, to peer: NodeName) -> Bool {
        // Out of the dictionary while it changes, so the queue is not copied.
        var outbound = peers.removeValue(forKey: peer) ?? Outbound()
        defer { peers[peer] = outbound }
        while outbound.queue.count + 1 > settings.queueCountMax || outbound.queue.byteCount + item.byteCount > settings.queueBytesMax {
            guard outbound.queue.dropOldestMessage() else {
                if item.requestID == nil { countDropped() }
                return false
            }
            countDropped()
        }
        outbound.queue.append(item)
        if case .idle = outbound.state {
            peers[peer] = outbound
            dial(peer)
            outbound = peers.removeValue(forKey: peer) ?? outbound
        }
        schedulePump(peer)
        return true
    }

    /// Pumps `peer` once the frames handed to the loop with this one are
    /// queued too, so that a burst of sends leaves in one system call.
    private func schedulePump(_ peer: NodeName) {
        guard pumpsScheduled.insert(peer).inserted else { return }
        transport.execute { [self] in
            pumpsScheduled.remove(peer)
            pump(peer)
        }
    }

    /// Seals and writes queued frames while the peer's socket takes them.
    private func pump(_ peer: NodeName) {
        guard case .open(let stream)? = peers[peer]?.state, var link = links[stream], var session = link.session,
              var outbound = peers.removeValue(forKey: peer) else { return }
        var sent = 0
        // Batches of up to socketBytesHigh, one write each; a batch the
        // socket does not take whole ends the pump until `drained`.
        repeat {
            while transport.pendingBytes(on: stream) < settings.socketBytesHigh, let item = outbound.queue.popFirst() {
                if let id = item.requestID {
                    guard pending[id] != nil else { continue }
                    pending[id]?.stream = stream
                }
                transport.write(session.seal(item.frame.encoded), on: stream, flush: false)
                sent += 1
            }
            transport.flush(stream)
        } while !outbound.queue.isEmpty && transport.pendingBytes(on: stream) < settings.socketBytesHigh
        peers[peer] = outbound
        guard sent > 0 else { return }
        link.session = session
        links[stream] = link
        counters.withLock { $0.framesSent += sent }
    }

    private func finish(_ id: UInt64, _ result: Result<[UInt8], Failure>) {
        guard let request = pending.removeValue(forKey: id) else { return }
        if request.stream == nil { peers[request.peer]?.queue.removeRequest(id) }
        request.resume(result)
    }

    private func countDropped() {
        counters.withLock { $0.messagesDropped += 1 }
    }

    // MARK: Connections (loop thread)

    private struct Link {
        let initiator: Bool
        /// The dialed peer, or once the handshake is done, the proven one.
        var peer: NodeName?
        var handshake: ChannelHandshake?
        var session: ChannelSession?
        let opened: Int64
    }

    private func dial(_ peer: NodeName) {
        guard !stopped, let address = resolve(peer), let stream = transport.connect(to: address) else { return backOff(peer) }
        peers[peer, default: Outbound()].state = .dialing(stream)
        links[stream] = Link(initiator: true, peer: peer, opened: transport.now)
    }

    private func backOff(_ peer: NodeName) {
        guard !stopped else { return }
        var outbound = peers[peer] ?? Outbound()
        outbound.attempts += 1
        let backOff = ReconnectBackOff(baseMilliseconds: settings.reconnectBaseMilliseconds,
                                       maxMilliseconds: settings.reconnectMaxMilliseconds)
        outbound.state = .waiting(until: transport.now + backOff.delay(afterFailures: outbound.attempts, using: &generator))
        peers[peer] = outbound
    }

    public func accepted(_ stream: StreamID) {
        links[stream] = Link(initiator: false, handshake: .accept(identity), opened: transport.now)
    }

    public func connected(_ stream: StreamID) {
        guard var link = links[stream], let peer = link.peer else { return }
        let (handshake, hello) = ChannelHandshake.initiate(identity, to: peer, nonce: SecureRandom.bytes(ChannelHandshake.nonceByteCount))
        link.handshake = handshake
        links[stream] = link
        transport.write(hello, on: stream)
    }

    public func received(_ frame: [UInt8], on stream: StreamID) {
        guard var link = links[stream] else { return }
        do throws(ChannelRefusal) {
            if var session = link.session {
                let content = try ChannelFrame(decoding: try session.open(frame))
                link.session = session
                links[stream] = link
                counters.withLock { $0.framesReceived += 1 }
                deliver(content, from: session.peer, on: stream)
            } else if var handshake = link.handshake {
                let step = try handshake.receive(frame, roster: roster(), fresh: remember, nonce: {
                    SecureRandom.bytes(ChannelHandshake.nonceByteCount)
                })
                link.handshake = handshake
                switch step {
                case .send(let reply):
                    links[stream] = link
                    transport.write(reply, on: stream)
                case .open(let session, let proof):
                    link.handshake = nil
                    link.session = session
                    link.peer = session.peer
                    links[stream] = link
                    if let proof { transport.write(proof, on: stream) }
                    counters.withLock { $0.connectionsOpened += 1 }
                    if link.initiator {
                        peers[session.peer, default: Outbound()].state = .open(stream)
                        peers[session.peer]?.attempts = 0
                        pump(session.peer)
                    }
                }
            } else {
                throw .malformedHandshake
            }
        } catch {
            refuse(stream, error)
        }
    }

    private func deliver(_ frame: ChannelFrame, from peer: NodeName, on stream: StreamID) {
        switch frame {
        case .message(let payload):
            handlers.message(peer, payload)
        case .request(let id, let payload):
            guard serving < settings.servedRequestsMax else {
                counters.withLock { $0.requestsDropped += 1 }
                return
            }
            serving += 1
            let handler = handlers.request
            Task { [transport] in
                let reply = await handler(peer, payload)
                transport.execute { [self] in answer(id, reply, on: stream) }
            }
        case .reply(let id, let payload):
            guard pending[id]?.peer == peer else { return }
            finish(id, .success(payload))
        }
    }

    private func answer(_ id: UInt64, _ payload: [UInt8], on stream: StreamID) {
        serving -= 1
        guard var link = links[stream], var session = link.session else { return }
        guard fits(payload), transport.pendingBytes(on: stream) < settings.socketBytesHigh else {
            counters.withLock { $0.repliesDropped += 1 }
            return
        }
        transport.write(session.seal(ChannelFrame.reply(id: id, payload).encoded), on: stream)
        link.session = session
        links[stream] = link
        counters.withLock { $0.framesSent += 1 }
    }

    /// Records an initiator's nonce; false when it was seen before.
    private func remember(_ nonce: [UInt8]) -> Bool {
        guard recentNonces.insert(nonce).inserted else { return false }
        recentNonceOrder.append(nonce)
        if recentNonceOrder.count > settings.recentNoncesMax {
            recentNonces.remove(recentNonceOrder.removeFirst())
        }
        return true
    }

    private func refuse(_ stream: StreamID, _ reason: ChannelRefusal) {
        counters.withLock { $0.refusals[reason, default: 0] += 1 }
        transport.close(stream)
    }

    public func drained(_ stream: StreamID) {
        guard let link = links[stream], link.initiator, link.session != nil, let peer = link.peer else { return }
        pump(peer)
    }

    public func closed(_ stream: StreamID, _ reason: StreamClose) {
        guard let link = links.removeValue(forKey: stream) else { return }
        switch reason {
        case .truncated: counters.withLock { $0.refusals[.truncated, default: 0] += 1 }
        case .tooLarge: counters.withLock { $0.refusals[.tooLarge, default: 0] += 1 }
        case .connectFailed, .peerClosed, .local: break
        }
        for (id, request) in pending where request.stream == stream {
            finish(id, .failure(.connectionLost))
        }
        if link.initiator, let peer = link.peer, peers[peer]?.stream == stream {
            backOff(peer)
        }
    }

    public func tick(_ now: Int64) {
        for (id, request) in pending where request.deadline <= now {
            finish(id, .failure(.timeout))
        }
        for (stream, link) in links where link.session == nil && now - link.opened >= settings.handshakeTimeoutMilliseconds {
            // A dial still connecting is not the peer's fault: closed, not counted.
            if link.handshake == nil { transport.close(stream) } else { refuse(stream, .handshakeTimeout) }
        }
        for (peer, outbound) in peers {
            if case .waiting(let until) = outbound.state, until <= now { dial(peer) }
        }
    }
}
