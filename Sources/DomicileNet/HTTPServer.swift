import CLinux
import DomicileModel
import Foundation

/// One request/response as the server saw it, for metrics and access logs.
/// It carries the route pattern, never the path or query values.
public struct HTTPExchange: Sendable {
    public let method: String
    /// The matched route's pattern (`/v1/subjects/{pid}`), or `unmatched`.
    public let route: String
    public let status: Int
    public let durationMicroseconds: Int64
    public let requestBodyBytes: Int
    public let responseBodyBytes: Int
    public let requestID: String
}

/// An HTTP/1.1 server over non-blocking sockets: one epoll event loop per
/// core sharing one listening socket (EPOLLEXCLUSIVE wakes one loop per
/// connection), strict parsing, per-connection deadlines, graceful shutdown.
public final class HTTPServer: Sendable {
    public typealias Observer = @Sendable (HTTPExchange) -> Void
    /// Says whether a client's `X-Request-Id` (already of the allowed
    /// characters and length) may be kept; a refused one is replaced.
    public typealias RequestIDFilter = @Sendable (String) -> Bool

    let settings: Settings
    let router: Router
    let observer: Observer?
    let requestIDFilter: RequestIDFilter?
    private let loops: [EventLoop]
    private let state = Locked(State())
    let openConnections = Locked(0)
    /// Body bytes reserved by requests being read or handled.
    let bodyBytesInFlight = Locked(0)
    /// A per-server prefix for generated request ids.
    let requestIDPrefix: String
    /// The TLS context new connections start with (nil: plaintext);
    /// `reloadTLS` replaces it, open connections keep theirs.
    private let tlsContext: Locked<TLSContext?>

    private struct State: Sendable {
        var listener: Int32?
        var registries: [ConnectionRegistry] = []
        var draining = false
    }

    /// With `tls`, every connection speaks TLS (docs/HTTP.md, "TLS").
    public init(settings: Settings = Settings(), router: Router, requestIDFilter: RequestIDFilter? = nil,
                observer: Observer? = nil, tls: TLSContext? = nil) throws {
        precondition(tls.map { $0.role == .server } ?? true, "an HTTPServer needs a server TLS context")
        tlsContext = Locked(tls)
        self.settings = try settings.validated()
        self.router = router
        self.requestIDFilter = requestIDFilter
        self.observer = observer
        loops = try (0..<settings.eventLoopCount).map { try EventLoop(name: "http-loop-\($0)") }
        requestIDPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        // A peer that disappears must surface as EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
    }

    public var connectionCount: Int { openConnections.value }

    /// True when connections speak TLS.
    public var usesTLS: Bool { tlsContext.value != nil }

    /// Connections accepted from now on use `context` (new certificates,
    /// key or trust); open connections keep the context they started with.
    /// A server started in plaintext stays in plaintext.
    public func reloadTLS(_ context: TLSContext) {
        precondition(context.role == .server, "an HTTPServer needs a server TLS context")
        tlsContext.withLock { current in
            if current != nil { current = context }
        }
    }

    /// A TLS session for a new connection, nil in plaintext.
    func tlsSession(for descriptor: Int32) throws(TLSError) -> TLSSession? {
        guard let context = tlsContext.value else { return nil }
        return try TLSSession(context: context, descriptor: descriptor)
    }
    /// Body bytes currently reserved (see `Settings.bodyBytesInFlightMax`).
    public var bodyBytesReserved: Int { bodyBytesInFlight.value }

    /// Reserves `bytes` of the in-flight body budget; false if it would pass it.
    func reserveBody(_ bytes: Int) -> Bool {
        bodyBytesInFlight.withLock { reserved in
            guard bytes <= settings.bodyBytesInFlightMax - reserved else { return false }
            reserved += bytes
            return true
        }
    }

    func releaseBody(_ bytes: Int) {
        guard bytes > 0 else { return }
        bodyBytesInFlight.withLock { $0 -= bytes }
    }

    /// Request bytes read and not yet parsed, over all connections (for tests:
    /// each loop is asked on its own thread).
    func bufferedInputBytes() async -> Int {
        var total = 0
        for registry in state.value.registries {
            total += await withCheckedContinuation { continuation in
                registry.loop.execute { continuation.resume(returning: registry.bufferedInputBytes) }
            }
        }
        return total
    }

    var isDraining: Bool { state.value.draining }

    /// Binds `address` (port 0 picks a free port), starts the loops and
    /// returns the bound address.
    @discardableResult
    public func start(address: SocketAddress) throws -> SocketAddress {
        let listener = try Socket.listen(on: address, backlog: settings.listenBacklog)
        let bound = try SocketAddress.local(of: listener)
        let registries = loops.enumerated().map { ConnectionRegistry(server: self, loop: $1, index: $0) }
        state.withLock { state in
            precondition(state.listener == nil, "an HTTPServer is started once")
            state.listener = listener
            state.registries = registries
        }
        for (loop, registry) in zip(loops, registries) {
            loop.start()
            loop.execute { registry.install(listener: listener) }
        }
        return bound
    }

    /// Stops accepting, lets requests in flight finish (their responses say
    /// `Connection: close`), closes idle connections, and after `grace`
    /// closes whatever is left. Returns true if nothing had to be cut off.
    @discardableResult
    public func shutdown(graceMilliseconds: Int64 = 10_000) async -> Bool {
        let (listener, registries) = state.withLock { state -> (Int32?, [ConnectionRegistry]) in
            guard !state.draining else { return (nil, []) }
            state.draining = true
            return (state.listener, state.registries)
        }
        guard let listener else { return true }
        let stoppedAccepting = DispatchGroup()
        for (loop, registry) in zip(loops, registries) {
            stoppedAccepting.enter()
            loop.execute {
                registry.beginDraining()
                stoppedAccepting.leave()
            }
        }
        await withCheckedContinuation { continuation in
            stoppedAccepting.notify(queue: .global()) { continuation.resume() }
        }
        closeDescriptor(listener)

        let deadline = monotonicMilliseconds() + graceMilliseconds
        while openConnections.value > 0 && monotonicMilliseconds() < deadline {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        let clean = openConnections.value == 0
        for (loop, registry) in zip(loops, registries) {
            loop.execute { registry.closeAll() }
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                for loop in self.loops { loop.stop() }
                continuation.resume()
            }
        }
        return clean
    }
}

/// The listener and connections of one event loop. Its state is touched only
/// on that loop's thread; other threads reach it through `loop.execute`.
final class ConnectionRegistry: Selectable, @unchecked Sendable {
    unowned let server: HTTPServer
    unowned let loop: EventLoop
    let index: Int
    private var listener: Int32?
    private var acceptPause = AcceptPause()
    /// One loop of those sharing the listening socket is woken per connection.
    private static let listenerEvents = EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue
    private var connections: [Int32: HTTPConnection] = [:]
    private var requestCounter: UInt64 = 0
    /// One read buffer per loop: a connection copies out what it read.
    var readBuffer: UnsafeMutableRawBufferPointer
    /// `Date` header value, refreshed once per second.
    private(set) var dateHeader = ""
    private var dateSecond = 0

    init(server: HTTPServer, loop: EventLoop, index: Int) {
        self.server = server
        self.loop = loop
        self.index = index
        readBuffer = .allocate(byteCount: server.settings.readChunkBytes, alignment: 16)
    }

    deinit { readBuffer.deallocate() }

    func install(listener: Int32) {
        do {
            try loop.register(listener, self, events: Self.listenerEvents)
            self.listener = listener
        } catch {
            preconditionFailure("cannot watch the listening socket: \(error)")
        }
        refreshDate()
        loop.onTick { [weak self] now in self?.tick(now) }
    }

    /// The listening socket is readable: accept what is pending.
    func handle(events: UInt32) {
        guard let listener else { return }
        for _ in 0..<64 {
            let accepted: IOResult<Int32>
            do {
                accepted = try Socket.accept(listener)
            } catch {
                acceptPause.failed(error, listener: listener, on: loop)
                return
            }
            guard case .done(let descriptor) = accepted else { return }
            admit(descriptor)
        }
    }

    private func admit(_ descriptor: Int32) {
        let admitted = server.openConnections.withLock { count -> Bool in
            guard count < server.settings.connectionsMax else { return false }
            count += 1
            return true
        }
        guard admitted, !server.isDraining else {
            if admitted { server.openConnections.withLock { $0 -= 1 } }
            refuse(descriptor)
            return
        }
        Socket.setNoDelay(descriptor)
        do {
            let connection = HTTPConnection(descriptor: descriptor, tls: try server.tlsSession(for: descriptor), registry: self,
                                            now: loop.now)
            try loop.register(descriptor, connection, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
            connections[descriptor] = connection
        } catch {
            closeDescriptor(descriptor)
            server.openConnections.withLock { $0 -= 1 }
        }
    }

    /// Over the connection limit: a best-effort 503 and close, without
    /// reading from or waiting on the client (under TLS just a close: the
    /// answer would need a handshake first).
    private func refuse(_ descriptor: Int32) {
        guard !server.usesTLS else {
            closeDescriptor(descriptor)
            return
        }
        let body = #"{"type":"https://domicile.dev/problems/too_many_connections","title":"Service Unavailable","status":503,"detail":"the server is at its connection limit","code":"too_many_connections"}"#
        let response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\(body)"
        var bytes = Array(response.utf8)
        _ = bytes.withUnsafeMutableBytes { try? Socket.send(descriptor, UnsafeRawBufferPointer($0)) }
        closeDescriptor(descriptor)
    }

    var bufferedInputBytes: Int { connections.values.reduce(0) { $0 + $1.bufferedInputBytes } }

    func connectionClosed(_ descriptor: Int32) {
        connections[descriptor] = nil
        server.openConnections.withLock { $0 -= 1 }
    }

    /// `{server prefix}-{loop}-{counter in hex}`: unique per server run,
    /// formatted without intermediate strings (it is made for every request).
    func nextRequestID() -> String {
        requestCounter += 1
        var counter = requestCounter
        var digits: (UInt64, UInt64) = (0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[15 - count] = Self.hexDigits[Int(counter & 0xF)]
                counter >>= 4
                count += 1
            } while counter > 0
        }
        return withUnsafeBytes(of: &digits) { buffer in
            String(unsafeUninitializedCapacity: requestIDPrefix.count + count) { output in
                _ = output.initialize(fromContentsOf: requestIDPrefix)
                _ = UnsafeMutableBufferPointer(rebasing: output[requestIDPrefix.count...])
                    .initialize(fromContentsOf: buffer[(16 - count)...])
                return requestIDPrefix.count + count
            }
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    /// `{server prefix}-{loop index}-` as bytes.
    private lazy var requestIDPrefix: [UInt8] = Array("\(server.requestIDPrefix)-\(index)-".utf8)

    private func tick(_ now: Int64) {
        if let listener { acceptPause.resume(listener: listener, handler: self, events: Self.listenerEvents, on: loop) }
        refreshDate()
        for connection in Array(connections.values) { connection.checkDeadlines(now: now) }
    }

    private func refreshDate() {
        var seconds = time(nil)
        guard Int(seconds) != dateSecond else { return }
        dateSecond = Int(seconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        dateHeader = String(decoding: buffer.prefix(count).map(UInt8.init(bitPattern:)), as: UTF8.self)
    }

    func beginDraining() {
        if let listener {
            loop.deregister(listener)
            self.listener = nil
        }
        for connection in Array(connections.values) { connection.drain() }
    }

    func closeAll() {
        for connection in Array(connections.values) { connection.close() }
    }
}
