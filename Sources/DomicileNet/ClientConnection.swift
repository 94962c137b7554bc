import CLinux

/// One connection of the client to a peer, owned by its loop's thread: it
/// connects without blocking, writes a request, parses the response, and
/// reports how the exchange ended to its `ClientPools`, which decides
/// whether it waits idle for the next request or closes.
final class ClientConnection: Selectable {
    enum Phase {
        /// connect(2) in progress since then; the request is queued.
        case connecting(since: Int64)
        /// Writing the request or reading its response.
        case exchanging
        /// In its peer's pool, unused since then.
        case idle(since: Int64)
        case closed
    }

    /// How the exchange of one request ended.
    enum Outcome {
        case response(HTTPClientResponse, reusable: Bool)
        /// A reused connection the peer had closed before any byte of the
        /// response: the keep-alive race, where a retry is sound.
        case stale
        case failed(HTTPClient.Failure)
    }

    let peer: SocketAddress
    private let descriptor: Int32
    /// The socket, or TLS over it (`HTTPClient.Settings.tls`).
    private let wire: Wire
    private unowned let pools: ClientPools
    private(set) var phase: Phase
    /// The request it carries (connecting or exchanging).
    var request: ClientRequest?
    /// Has carried a response before (it may have gone stale since).
    private var reused = false
    private var output = PendingOutput()
    private var input = InputBuffer()
    private var parser: ResponseParser
    private var peerClosed = false
    /// The epoll mask last registered, so epoll_ctl runs only on a change.
    private var interest = EPOLLOUT.rawValue | EPOLLRDHUP.rawValue

    private var failure: HTTPClient.Failure { .connectionClosed(peer: peer.description) }

    /// The TLS context the connection was made with (nil: plaintext).
    let context: TLSContext?

    /// Starts connecting to `peer`.
    init(peer: SocketAddress, pools: ClientPools) throws(SystemError) {
        self.peer = peer
        self.pools = pools
        parser = ResponseParser(limits: pools.settings.responseLimits)
        phase = .connecting(since: pools.loop.now)
        let descriptor = try Socket.startConnect(to: peer)
        self.descriptor = descriptor
        var tls: TLSSession?
        context = pools.tls.value
        if let context {
            do {
                tls = try TLSSession(context: context, descriptor: descriptor, expectedHost: pools.settings.tlsServerName ?? peer.host)
            } catch {
                closeDescriptor(descriptor)
                throw .protocolFailure("SSL_new")
            }
        }
        wire = Wire(descriptor: descriptor, tls: tls)
        try pools.loop.adopt(descriptor, self, events: interest)
    }

    /// Sends `request`: at once when idle, once connected when connecting.
    func carry(_ request: ClientRequest) {
        self.request = request
        output.append(request.bytes)
        if case .idle = phase {
            phase = .exchanging
            write()
        }
    }

    /// Back in the pool after a response that left it reusable.
    func becomeIdle(now: Int64) {
        request = nil
        parser = ResponseParser(limits: pools.settings.responseLimits)
        phase = .idle(since: now)
        watch(EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
    }

    func close() {
        if case .closed = phase { return }
        phase = .closed
        request = nil
        pools.loop.deregister(descriptor)
        wire.close()
    }

    // MARK: Events

    func handle(events: UInt32) {
        switch phase {
        case .closed:
            return
        case .connecting:
            if let error = Socket.connectError(descriptor) {
                finish(.failed(.connectFailed(peer: peer.description, reason: error.description)))
                return
            }
            guard events & EPOLLOUT.rawValue != 0 else { return }
            Socket.setNoDelay(descriptor)
            phase = .exchanging
            guard handshake() else { return }
            write()
        case .exchanging:
            if !wire.isEstablished {
                guard handshake() else { return }
                write()
                return
            }
            if events & EPOLLOUT.rawValue != 0 { write() }
            let readable = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue
            if case .exchanging = phase, events & readable != 0 { read() }
        case .idle:
            // The peer closed it (its idle timeout) or sent what nobody asked
            // for: either way it cannot carry another request.
            pools.idleConnectionEnded(self)
        }
    }

    /// Advances the TLS handshake; true once it is done. A refused
    /// certificate or a bad handshake fails the call with `tlsFailed`.
    private func handshake() -> Bool {
        guard let tls = wire.tls else { return true }
        do {
            switch try tls.handshake() {
            case .done: return true
            case .wantRead: watch(EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
            case .wantWrite: watch(EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue)
            }
        } catch {
            finish(.failed(.tlsFailed(peer: peer.description, reason: error.reason)))
        }
        return false
    }

    private func write() {
        do {
            let done = try output.flush(to: wire)
            watch(done ? EPOLLIN.rawValue | EPOLLRDHUP.rawValue : EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue)
        } catch {
            finish(reused ? .stale : .failed(failure))
        }
    }

    private func read() {
        let buffer = pools.readBuffer
        for _ in 0..<4 where !peerClosed {
            let result = Result { () throws(SystemError) in try wire.read(into: buffer) }
            switch result {
            case .failure:
                // A reset: like an end of stream, but nothing more is coming.
                let nothingReceived = !parser.started && input.isEmpty
                finish(nothingReceived && reused ? .stale : .failed(failure))
                return
            case .success(.wouldBlock):
                parse()
                return
            case .success(.done(0)):
                peerClosed = true
            case .success(.done(let count)):
                input.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                if count < buffer.count {
                    parse()
                    return
                }
            }
        }
        parse()
    }

    private func parse() {
        switch parser.parse(&input, peerClosed: peerClosed) {
        case .needMore:
            return
        case .response(let response, let reusable):
            reused = true
            // An early answer (the request not all sent) or extra bytes leave it unusable.
            finish(.response(response, reusable: reusable && input.isEmpty && !peerClosed && output.isEmpty))
        case .failure(let error) where error.code == "connection_closed" && !parser.started:
            finish(reused ? .stale : .failed(failure))
        case .failure(let error):
            finish(.failed(.malformedResponse(peer: peer.description, reason: error.detail)))
        }
    }

    private func finish(_ outcome: Outcome) {
        input = InputBuffer()
        peerClosed = false
        pools.finished(self, outcome)
    }

    private func watch(_ events: UInt32) {
        guard events != interest, !phase.isClosed else { return }
        pools.loop.modify(descriptor, events: events)
        interest = events
    }
}

extension ClientConnection.Phase {
    var isClosed: Bool {
        if case .closed = self { return true }
        return false
    }
}
