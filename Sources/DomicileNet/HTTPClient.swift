import DomicileModel
import Foundation

/// A client for node-to-node calls on its own event loops: non-blocking
/// connect, send and receive, a bounded keep-alive pool per peer (busy and
/// idle connections together), a bounded queue of calls waiting for a
/// connection (none by default: a call finding every connection busy fails
/// at once with `poolExhausted`), and connect and request deadlines the loop
/// enforces. Cancelling the calling task fails the call with `cancelled`;
/// a call that ends before its response (deadline, cancellation) closes its
/// connection, so its slot comes back at once.
///
/// No thread waits for a call: one loop thread (`eventLoopCount`) serves
/// every call in flight, whatever their number. Each peer's connections
/// live on one loop.
public final class HTTPClient: Sendable {
    public struct Settings: Sendable {
        /// How long to wait for a TCP connection to be established.
        public var connectTimeoutMilliseconds: Int64 = 1_000
        /// How long a whole call (waiting for a connection, connecting,
        /// sending and receiving) may take.
        public var requestTimeoutMilliseconds: Int64 = 5_000
        /// Connections to one peer at most (busy and idle together).
        public var connectionsPerPeerMax = 16
        /// Idle connections kept per peer for reuse.
        public var idleConnectionsPerPeerMax = 8
        /// Calls to one peer that may wait for a connection when all are
        /// busy; past it a call fails with `poolExhausted`. 0: fail at once.
        public var waitingRequestsPerPeerMax = 0
        /// An idle connection older than this is closed instead of reused
        /// (servers close idle keep-alive connections too).
        public var idleTimeoutMilliseconds: Int64 = 20_000
        /// Event loops (threads), started on the first call.
        public var eventLoopCount = 1
        /// Response size limits.
        public var responseLimits: HTTPParseLimits = {
            var limits = HTTPParseLimits()
            limits.headerBytesMax = 64 * 1_024
            limits.bodyBytesMax = 16 * 1_024 * 1_024
            return limits
        }()
        /// Delays to the peers of other regions (`cluster/up --wan`): the
        /// request waits the link's one-way time before it is written, the
        /// response before it is handed back. Never loses a byte.
        public var links: LinkShaper?
        /// TLS to every peer (a client context: the CA to trust, and a
        /// certificate to present for mutual TLS); nil: plaintext.
        public var tls: TLSContext?
        /// The name every peer's certificate must carry; nil: the peer's
        /// IP address (an IP subject alternative name).
        public var tlsServerName: String?

        public init() {}
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case poolExhausted(peer: String)
        case connectFailed(peer: String, reason: String)
        case timedOut(peer: String)
        case connectionClosed(peer: String)
        case malformedResponse(peer: String, reason: String)
        /// The TLS handshake failed: the peer's certificate was refused
        /// (unknown CA, expired, another host) or the peer refused ours.
        case tlsFailed(peer: String, reason: String)
        /// The calling task was cancelled.
        case cancelled(peer: String)
        /// The request itself could not be written: a line break (or, in the
        /// method or target, a space) would split it into another request.
        case invalidRequest(reason: String)

        public var description: String {
            switch self {
            case .poolExhausted(let peer): return "all \(peer) connections are busy"
            case .connectFailed(let peer, let reason): return "cannot connect to \(peer): \(reason)"
            case .timedOut(let peer): return "\(peer) did not answer in time"
            case .connectionClosed(let peer): return "\(peer) closed the connection"
            case .malformedResponse(let peer, let reason): return "malformed response from \(peer): \(reason)"
            case .tlsFailed(let peer, let reason): return "TLS with \(peer) failed: \(reason)"
            case .cancelled(let peer): return "the call to \(peer) was cancelled"
            case .invalidRequest(let reason): return "the request cannot be sent: \(reason)"
            }
        }
    }

    /// A peer's connections, and the calls waiting for one, at one moment.
    struct ConnectionCounts: Sendable, Equatable {
        var busy = 0
        var idle = 0
        var waiting = 0
    }

    public let settings: Settings
    /// Created and started on the first call.
    private let pools = Locked<[ClientPools]>([])
    private let counts = Locked<[SocketAddress: ConnectionCounts]>([:])
    /// The context new connections are made with: `settings.tls` until
    /// `reloadTLS` replaces it.
    private let tlsContext: Locked<TLSContext?>

    public init(settings: Settings = Settings()) {
        precondition(settings.eventLoopCount >= 1 && settings.connectionsPerPeerMax >= 1, "HTTPClient needs a loop and a connection")
        self.settings = settings
        tlsContext = Locked(settings.tls)
    }

    /// Connections made from now on use `context` (a new CA to trust, a
    /// new certificate to present); idle ones are closed, and busy ones
    /// close when their call ends, so every call that starts afterwards
    /// verifies its peer against the new trust. Calls in flight finish on
    /// their connection. A plaintext client stays plaintext.
    public func reloadTLS(_ context: TLSContext) {
        precondition(context.role == .client, "an HTTPClient needs a client TLS context")
        let reloaded = tlsContext.withLock { current in
            guard current != nil else { return false }
            current = context
            return true
        }
        if reloaded { closeIdleConnections() }
    }

    deinit {
        for pools in pools.value {
            pools.loop.execute { pools.closeAll() }
            pools.loop.requestStop()
        }
    }

    /// Sends one request and returns the response (any status).
    public func send(_ method: String, _ target: String, to peer: SocketAddress, headers: HTTPHeaders = HTTPHeaders(),
                     body: [UInt8] = [], timeoutMilliseconds: Int64? = nil) async throws -> HTTPClientResponse {
        if let reason = Self.injection(method: method, target: target, headers: headers) { throw Failure.invalidRequest(reason: reason) }
        let request = ClientRequest(peer: peer, bytes: serialize(method, target, peer: peer, headers: headers, body: body),
                                    deadline: monotonicMilliseconds() + (timeoutMilliseconds ?? settings.requestTimeoutMilliseconds),
                                    idempotent: ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].contains(method))
        let pools = try self.pools(for: peer)
        let response = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                request.continuation = continuation
                let submit: @Sendable () -> Void = {
                    if !pools.loop.execute({ pools.submit(request) }) {
                        request.resume(with: .failure(.connectionClosed(peer: peer.description)))
                    }
                }
                if let links = settings.links { links.afterOneWay(to: peer, submit) } else { submit() }
            }
        } onCancel: {
            request.markCancelled()
            pools.loop.execute { pools.cancel(request) }
        }
        return try await handBack(response, of: request)
    }

    /// The response once the link's one-way time has passed (at once when
    /// the link is not shaped); a deadline that passes first times the call out.
    private func handBack(_ response: HTTPClientResponse, of request: ClientRequest) async throws -> HTTPClientResponse {
        guard let links = settings.links, links.shape(to: request.peer) != nil else { return response }
        let remaining = (request.deadline - monotonicMilliseconds()) * 1_000
        guard await links.waitOneWay(to: request.peer, limitMicroseconds: remaining) else {
            throw Failure.timedOut(peer: request.peer.description)
        }
        return response
    }

    /// Sends `value` as JSON.
    public func send<T: Encodable>(_ method: String, _ target: String, to peer: SocketAddress, json value: T,
                                   headers: HTTPHeaders = HTTPHeaders(), timeoutMilliseconds: Int64? = nil) async throws -> HTTPClientResponse {
        var headers = headers
        headers.set("Content-Type", "application/json")
        return try await send(method, target, to: peer, headers: headers, body: Array(try JSONCoding.encoder.encode(value)),
                              timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Closes the idle connections (soon: on the loops' threads).
    public func closeIdleConnections() {
        for pools in pools.value { pools.loop.execute { pools.closeIdleConnections() } }
    }

    /// Connections held for `peer` (busy, idle), for tests and metrics. A
    /// call that has returned is already counted out.
    public func connectionCounts(for peer: SocketAddress) -> (busy: Int, idle: Int) {
        let counts = counts.withLock { $0[peer] } ?? ConnectionCounts()
        return (counts.busy, counts.idle)
    }

    /// Calls to `peer` waiting for a connection (for tests and metrics).
    public func waitingCalls(for peer: SocketAddress) -> Int {
        counts.withLock { $0[peer]?.waiting } ?? 0
    }

    /// The loop that holds `peer`'s connections, starting the loops on the first call.
    private func pools(for peer: SocketAddress) throws -> ClientPools {
        try pools.withLock { pools in
            if pools.isEmpty {
                for index in 0..<settings.eventLoopCount {
                    let loop: EventLoop
                    do {
                        loop = try EventLoop(name: "http-client-\(index)")
                    } catch {
                        throw Failure.connectFailed(peer: peer.description, reason: "\(error)")
                    }
                    let loopPools = ClientPools(loop: loop, settings: settings, tls: tlsContext, published: counts)
                    loop.start()
                    loop.execute { loopPools.install() }
                    pools.append(loopPools)
                }
            }
            return pools[Int(UInt(bitPattern: peer.hashValue) % UInt(pools.count))]
        }
    }

    /// Why the request's head would not be one request, or nil.
    static func injection(method: String, target: String, headers: HTTPHeaders) -> String? {
        let breaksLine: (String) -> Bool = { $0.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 } }
        if method.isEmpty || method.utf8.contains(32) || breaksLine(method) { return "the method is not a token" }
        if target.isEmpty || target.utf8.contains(32) || breaksLine(target) { return "the target has a space or a line break" }
        for (name, value) in headers where breaksLine(name) || breaksLine(value) || name.utf8.contains(58) {
            return "a header has a line break, or a colon in its name"
        }
        return nil
    }

    private func serialize(_ method: String, _ target: String, peer: SocketAddress, headers: HTTPHeaders, body: [UInt8]) -> [UInt8] {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(peer)\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers where name != "host" && name != "content-length" {
            head += "\(name): \(value)\r\n"
        }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}
