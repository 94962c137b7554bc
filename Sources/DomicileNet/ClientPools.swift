import CLinux
import DomicileModel

/// The client's connections on one event loop, per peer, and the requests
/// they carry or that wait for one. Touched only on the loop's thread;
/// `HTTPClient` reaches it through `loop.execute`.
///
/// Every request leaves through `complete`, once: with its response, or
/// failed by its connection, its deadline (`tick`), its task's cancellation
/// or the client closing. A request that leaves its connection before the
/// response closes it, so a slot is never held by a request nobody awaits.
final class ClientPools: @unchecked Sendable {
    private struct PeerPool {
        var idle: [ClientConnection] = []
        /// Connections connecting or carrying a request.
        var busy = 0
        /// Requests waiting for a connection, oldest first.
        var waiting: [ClientRequest] = []
        var connections: Int { busy + idle.count }
        var isUnused: Bool { connections == 0 && waiting.isEmpty }
    }

    let loop: EventLoop
    let settings: HTTPClient.Settings
    /// The client's current TLS context (nil: plaintext), read per new connection.
    let tls: Locked<TLSContext?>
    /// One read buffer for the loop: a connection copies out what it read.
    let readBuffer: UnsafeMutableRawBufferPointer
    /// What `connectionCounts` reports, written here whenever a pool changes.
    private let published: Locked<[SocketAddress: HTTPClient.ConnectionCounts]>
    private var peers: [SocketAddress: PeerPool] = [:]
    private var requests: [ObjectIdentifier: ClientRequest] = [:]
    private var closed = false

    init(loop: EventLoop, settings: HTTPClient.Settings, tls: Locked<TLSContext?>,
         published: Locked<[SocketAddress: HTTPClient.ConnectionCounts]>) {
        self.loop = loop
        self.settings = settings
        self.tls = tls
        self.published = published
        readBuffer = .allocate(byteCount: 64 * 1_024, alignment: 16)
    }

    deinit { readBuffer.deallocate() }

    /// Watches the deadlines (from the loop's thread).
    func install() {
        loop.onTick { [self] now in tick(now) }
    }

    // MARK: Requests

    func submit(_ request: ClientRequest) {
        guard !closed else { return request.resume(with: .failure(.connectionClosed(peer: request.peer.description))) }
        guard !request.isCancelled else { return request.resume(with: .failure(.cancelled(peer: request.peer.description))) }
        requests[ObjectIdentifier(request)] = request
        dispatch(request, reuseIdle: true)
        publish(request.peer)
    }

    /// The calling task was cancelled.
    func cancel(_ request: ClientRequest) {
        abandon(request, .cancelled(peer: request.peer.description))
    }

    /// A connection for `request`: an idle one, a new one, a place in the
    /// queue, or `poolExhausted`.
    private func dispatch(_ request: ClientRequest, reuseIdle: Bool) {
        let peer = request.peer
        var pool = peers[peer] ?? PeerPool()
        if reuseIdle, let connection = pool.idle.popLast() {
            pool.busy += 1
            peers[peer] = pool
            carry(request, on: connection)
        } else if pool.connections < settings.connectionsPerPeerMax {
            let connection: ClientConnection
            do {
                connection = try ClientConnection(peer: peer, pools: self)
            } catch {
                peers[peer] = pool
                complete(request, .failure(.connectFailed(peer: peer.description, reason: error.description)))
                return
            }
            pool.busy += 1
            peers[peer] = pool
            carry(request, on: connection)
        } else if pool.waiting.count < settings.waitingRequestsPerPeerMax {
            pool.waiting.append(request)
            peers[peer] = pool
        } else {
            peers[peer] = pool
            complete(request, .failure(.poolExhausted(peer: peer.description)))
        }
    }

    private func carry(_ request: ClientRequest, on connection: ClientConnection) {
        request.connection = connection
        connection.carry(request)
    }

    /// Takes `request` off its connection (closing it: the response is
    /// unread) or out of the queue, and fails it.
    private func abandon(_ request: ClientRequest, _ failure: HTTPClient.Failure) {
        guard requests[ObjectIdentifier(request)] != nil else { return }
        if let connection = request.connection {
            request.connection = nil
            connection.close()
            peers[request.peer]?.busy -= 1
            serveWaiting(request.peer)
        } else {
            peers[request.peer]?.waiting.removeAll { $0 === request }
        }
        complete(request, .failure(failure))
    }

    /// Answers the caller after the pools are in order and published.
    private func complete(_ request: ClientRequest, _ result: Result<HTTPClientResponse, HTTPClient.Failure>) {
        requests[ObjectIdentifier(request)] = nil
        publish(request.peer)
        request.resume(with: result)
    }

    // MARK: Connections

    /// `connection` is done with its request.
    func finished(_ connection: ClientConnection, _ outcome: ClientConnection.Outcome) {
        guard let request = connection.request else { return connection.close() }
        connection.request = nil
        request.connection = nil
        let peer = request.peer
        peers[peer]?.busy -= 1
        switch outcome {
        case .response(let response, let reusable):
            // One made before a TLS reload is not reused: every later call verifies against the new trust.
            if reusable, connection.context === tls.value { reuse(connection) } else { connection.close() }
            serveWaiting(peer)
            complete(request, .success(response))
        case .stale where request.idempotent && !request.retried:
            connection.close()
            request.retried = true
            dispatch(request, reuseIdle: false)
            publish(peer)
        case .stale:
            connection.close()
            serveWaiting(peer)
            complete(request, .failure(.connectionClosed(peer: peer.description)))
        case .failed(let failure):
            connection.close()
            serveWaiting(peer)
            complete(request, .failure(failure))
        }
    }

    /// A reusable connection goes to the oldest waiting request, or idles.
    private func reuse(_ connection: ClientConnection) {
        let peer = connection.peer
        if let next = peers[peer]?.waiting.first {
            peers[peer]?.waiting.removeFirst()
            peers[peer]?.busy += 1
            connection.becomeIdle(now: loop.now)
            carry(next, on: connection)
        } else if let idle = peers[peer]?.idle.count, idle < settings.idleConnectionsPerPeerMax {
            connection.becomeIdle(now: loop.now)
            peers[peer]?.idle.append(connection)
        } else {
            connection.close()
        }
    }

    /// Starts waiting requests while `peer` has room for a connection.
    private func serveWaiting(_ peer: SocketAddress) {
        while let pool = peers[peer], let next = pool.waiting.first,
              !pool.idle.isEmpty || pool.connections < settings.connectionsPerPeerMax {
            peers[peer]?.waiting.removeFirst()
            dispatch(next, reuseIdle: true)
        }
    }

    /// An idle connection was closed by its peer.
    func idleConnectionEnded(_ connection: ClientConnection) {
        peers[connection.peer]?.idle.removeAll { $0 === connection }
        connection.close()
        publish(connection.peer)
    }

    // MARK: Time and closing

    private func tick(_ now: Int64) {
        for request in Array(requests.values) {
            if now >= request.deadline {
                abandon(request, .timedOut(peer: request.peer.description))
            } else if let connection = request.connection, case .connecting(let since) = connection.phase,
                      now - since >= settings.connectTimeoutMilliseconds {
                finished(connection, .failed(.timedOut(peer: request.peer.description)))
            }
        }
        for (peer, pool) in peers where pool.idle.contains(where: { isExpired($0, now) }) {
            for connection in pool.idle where isExpired(connection, now) { connection.close() }
            peers[peer]?.idle.removeAll { isExpired($0, now) }
            publish(peer)
        }
    }

    private func isExpired(_ connection: ClientConnection, _ now: Int64) -> Bool {
        guard case .idle(let since) = connection.phase else { return true }
        return now - since > settings.idleTimeoutMilliseconds
    }

    func closeIdleConnections() {
        for (peer, pool) in peers where !pool.idle.isEmpty {
            pool.idle.forEach { $0.close() }
            peers[peer]?.idle.removeAll()
            publish(peer)
        }
    }

    /// Fails every request and closes every connection; later requests fail at once.
    func closeAll() {
        closed = true
        for request in Array(requests.values) { abandon(request, .connectionClosed(peer: request.peer.description)) }
        closeIdleConnections()
    }

    private func publish(_ peer: SocketAddress) {
        let pool = peers[peer] ?? PeerPool()
        if pool.isUnused { peers[peer] = nil }
        published.withLock {
            $0[peer] = pool.isUnused ? nil : HTTPClient.ConnectionCounts(busy: pool.busy, idle: pool.idle.count, waiting: pool.waiting.count)
        }
    }
}
