import CLinux
import DomicileModel
import Foundation

/// A client for node-to-node calls: a bounded keep-alive pool per peer,
/// connect and request deadlines, and no unbounded queue anywhere — when a
/// peer's connections are all busy, a call fails at once with
/// `poolExhausted` rather than waiting behind others.
///
/// Calls block a thread of the client's own `BlockingPool` in poll(2),
/// never a thread of Swift's cooperative pool or of libdispatch (which share
/// threads); at most `blockingThreadsMax` of them.
public final class HTTPClient: Sendable {
    public struct Settings: Sendable {
        /// How long to wait for a TCP connection to be established.
        public var connectTimeoutMilliseconds: Int64 = 1_000
        /// How long a whole exchange (send and receive) may take, per call.
        public var requestTimeoutMilliseconds: Int64 = 5_000
        /// Connections to one peer at most (busy and idle together).
        public var connectionsPerPeerMax = 16
        /// Idle connections kept per peer for reuse.
        public var idleConnectionsPerPeerMax = 8
        /// An idle connection older than this is closed instead of reused
        /// (servers close idle keep-alive connections too).
        public var idleTimeoutMilliseconds: Int64 = 20_000
        /// Threads that may block in I/O at once, for all peers together.
        public var blockingThreadsMax = 64
        /// Response size limits.
        public var responseLimits: HTTPParseLimits = {
            var limits = HTTPParseLimits()
            limits.headerBytesMax = 64 * 1_024
            limits.bodyBytesMax = 16 * 1_024 * 1_024
            return limits
        }()

        public init() {}
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case poolExhausted(peer: String)
        case connectFailed(peer: String, reason: String)
        case timedOut(peer: String)
        case connectionClosed(peer: String)
        case malformedResponse(peer: String, reason: String)

        public var description: String {
            switch self {
            case .poolExhausted(let peer): return "all \(peer) connections are busy"
            case .connectFailed(let peer, let reason): return "cannot connect to \(peer): \(reason)"
            case .timedOut(let peer): return "\(peer) did not answer in time"
            case .connectionClosed(let peer): return "\(peer) closed the connection"
            case .malformedResponse(let peer, let reason): return "malformed response from \(peer): \(reason)"
            }
        }
    }

    private struct PeerPool: Sendable {
        var idle: [(descriptor: Int32, since: Int64)] = []
        var busy = 0
    }

    public let settings: Settings
    private let pools = Locked<[SocketAddress: PeerPool]>([:])
    private let pool: BlockingPool

    public init(settings: Settings = Settings()) {
        self.settings = settings
        pool = BlockingPool(name: "http-client", threadsMax: settings.blockingThreadsMax)
    }

    deinit { closeIdleConnections() }

    /// Sends one request and returns the response (any status).
    public func send(_ method: String, _ target: String, to peer: SocketAddress, headers: HTTPHeaders = HTTPHeaders(),
                     body: [UInt8] = [], timeoutMilliseconds: Int64? = nil) async throws -> HTTPClientResponse {
        let deadline = monotonicMilliseconds() + (timeoutMilliseconds ?? settings.requestTimeoutMilliseconds)
        let request = serialize(method, target, peer: peer, headers: headers, body: body)
        let idempotent = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].contains(method)
        return try await withCheckedThrowingContinuation { continuation in
            pool.submit {
                continuation.resume(with: Result {
                    try self.exchange(request, with: peer, deadline: deadline, retryStale: idempotent)
                })
            }
        }
    }

    /// Sends `value` as JSON.
    public func send<T: Encodable>(_ method: String, _ target: String, to peer: SocketAddress, json value: T,
                                   headers: HTTPHeaders = HTTPHeaders(), timeoutMilliseconds: Int64? = nil) async throws -> HTTPClientResponse {
        var headers = headers
        headers.set("Content-Type", "application/json")
        return try await send(method, target, to: peer, headers: headers, body: Array(try JSONCoding.encoder.encode(value)),
                              timeoutMilliseconds: timeoutMilliseconds)
    }

    public func closeIdleConnections() {
        let descriptors = pools.withLock { pools -> [Int32] in
            defer { for key in pools.keys { pools[key]?.idle.removeAll() } }
            return pools.values.flatMap { $0.idle.map(\.descriptor) }
        }
        descriptors.forEach(closeDescriptor)
    }

    /// Connections held for `peer` (busy, idle), for tests and metrics.
    public func connectionCounts(for peer: SocketAddress) -> (busy: Int, idle: Int) {
        pools.withLock { pools in (pools[peer]?.busy ?? 0, pools[peer]?.idle.count ?? 0) }
    }

    // MARK: One exchange (on a Dispatch worker)

    private func exchange(_ request: [UInt8], with peer: SocketAddress, deadline: Int64, retryStale: Bool) throws -> HTTPClientResponse {
        let (descriptor, reused) = try checkOut(peer, deadline: deadline)
        do {
            let (response, reusable) = try roundTrip(request, on: descriptor, peer: peer, deadline: deadline)
            checkIn(peer, descriptor, reusable: reusable)
            return response
        } catch StaleConnection.closedBeforeResponse where reused {
            checkIn(peer, descriptor, reusable: false)
            // A reused keep-alive connection the server had just closed:
            // retry once on a fresh one, but only if repeating is harmless.
            guard retryStale else { throw Failure.connectionClosed(peer: peer.description) }
            return try exchange(request, with: peer, deadline: deadline, retryStale: false)
        } catch StaleConnection.closedBeforeResponse {
            checkIn(peer, descriptor, reusable: false)
            throw Failure.connectionClosed(peer: peer.description)
        } catch {
            checkIn(peer, descriptor, reusable: false)
            throw error
        }
    }

    private enum StaleConnection: Error {
        case closedBeforeResponse
    }

    private func roundTrip(_ request: [UInt8], on descriptor: Int32, peer: SocketAddress,
                           deadline: Int64) throws -> (HTTPClientResponse, Bool) {
        var offset = 0
        while offset < request.count {
            try wait(descriptor, for: Int16(POLLOUT), peer: peer, deadline: deadline)
            let result = request.withUnsafeBytes { raw in
                Result { () throws(SystemError) in try Socket.send(descriptor, UnsafeRawBufferPointer(rebasing: raw[offset...])) }
            }
            switch result {
            case .success(.done(let written)): offset += written
            case .success(.wouldBlock): continue
            case .failure: throw StaleConnection.closedBeforeResponse
            }
        }
        var parser = ResponseParser(limits: settings.responseLimits)
        var input = InputBuffer()
        var buffer = [UInt8](repeating: 0, count: 64 * 1_024)
        var peerClosed = false
        while true {
            switch parser.parse(&input, peerClosed: peerClosed) {
            case .response(let response, let reusable):
                return (response, reusable && input.isEmpty)
            case .failure(let error):
                if error.code == "connection_closed" && !parser.started { throw StaleConnection.closedBeforeResponse }
                throw Failure.malformedResponse(peer: peer.description, reason: error.detail)
            case .needMore:
                try wait(descriptor, for: Int16(POLLIN), peer: peer, deadline: deadline)
                let result = buffer.withUnsafeMutableBytes { raw in
                    Result { () throws(SystemError) in try Socket.read(descriptor, into: raw) }
                }
                switch result {
                case .success(.done(0)): peerClosed = true
                case .success(.done(let count)): buffer.withUnsafeBytes { input.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                case .success(.wouldBlock): continue
                case .failure:
                    if !parser.started && input.isEmpty { throw StaleConnection.closedBeforeResponse }
                    throw Failure.connectionClosed(peer: peer.description)
                }
            }
        }
    }

    private func wait(_ descriptor: Int32, for events: Int16, peer: SocketAddress, deadline: Int64) throws {
        do {
            try Socket.wait(descriptor, for: events, deadline: deadline)
        } catch .timedOut {
            throw Failure.timedOut(peer: peer.description)
        } catch {
            throw Failure.connectionClosed(peer: peer.description)
        }
    }

    // MARK: Pool

    private func checkOut(_ peer: SocketAddress, deadline: Int64) throws -> (Int32, reused: Bool) {
        let now = monotonicMilliseconds()
        let (reusable, stale, mayConnect) = pools.withLock { pools -> (Int32?, [Int32], Bool) in
            var pool = pools[peer] ?? PeerPool()
            defer { pools[peer] = pool }
            let stale = pool.idle.filter { now - $0.since > settings.idleTimeoutMilliseconds }.map(\.descriptor)
            pool.idle.removeAll { now - $0.since > settings.idleTimeoutMilliseconds }
            if let idle = pool.idle.popLast() {
                pool.busy += 1
                return (idle.descriptor, stale, false)
            }
            guard pool.busy + pool.idle.count < settings.connectionsPerPeerMax else { return (nil, stale, false) }
            pool.busy += 1
            return (nil, stale, true)
        }
        stale.forEach(closeDescriptor)
        if let reusable { return (reusable, true) }
        guard mayConnect else { throw Failure.poolExhausted(peer: peer.description) }
        do {
            return (try connect(peer, deadline: min(deadline, now + settings.connectTimeoutMilliseconds)), false)
        } catch {
            pools.withLock { $0[peer]?.busy -= 1 }
            throw error
        }
    }

    private func checkIn(_ peer: SocketAddress, _ descriptor: Int32, reusable: Bool) {
        let keep = pools.withLock { pools -> Bool in
            pools[peer]?.busy -= 1
            guard reusable, (pools[peer]?.idle.count ?? 0) < settings.idleConnectionsPerPeerMax else { return false }
            pools[peer]?.idle.append((descriptor, monotonicMilliseconds()))
            return true
        }
        if !keep { closeDescriptor(descriptor) }
    }

    private func connect(_ peer: SocketAddress, deadline: Int64) throws -> Int32 {
        do {
            return try Socket.connect(to: peer, deadline: deadline)
        } catch .timedOut {
            throw Failure.timedOut(peer: peer.description)
        } catch .failed(let error) {
            throw Failure.connectFailed(peer: peer.description, reason: error.description)
        }
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
