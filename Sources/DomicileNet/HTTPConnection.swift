import CLinux
import Foundation

/// One client connection, owned by its event loop's thread. Requests are
/// handled one at a time, in order: a pipelined request is parsed only after
/// the previous response is queued, so responses keep the request order.
final class HTTPConnection: Selectable, @unchecked Sendable {
    private enum Phase {
        /// Between requests; nothing of the next one received.
        case idle(since: Int64)
        /// Reading a header block that started at `since`.
        case head(since: Int64)
        /// Reading a body; the header block ended at `since`.
        case body(since: Int64)
        /// A handler is producing the response.
        case handling
        /// The last response is being written; then the connection closes.
        case closing
        case closed
    }

    private let descriptor: Int32
    private unowned let registry: ConnectionRegistry
    private var phase: Phase
    private var parser: RequestParser
    private var input = InputBuffer()
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// When the oldest unwritten output was queued (write timeout).
    private var outputPendingSince: Int64?
    private var peerClosed = false
    private var readingPaused = false
    /// The epoll mask last registered, so epoll_ctl runs only on a change.
    private var interest: UInt32 = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
    private var draining = false
    private var requestStarted: Int64 = 0

    private var server: HTTPServer { registry.server }
    private var loop: EventLoop { registry.loop }

    init(descriptor: Int32, registry: ConnectionRegistry, now: Int64) {
        self.descriptor = descriptor
        self.registry = registry
        parser = RequestParser(limits: registry.server.settings.limits)
        // A new connection owes its first request's head within the header timeout.
        phase = .head(since: now)
    }

    // MARK: Events

    func handle(events: UInt32) {
        if events & EPOLLOUT.rawValue != 0 { flush() }
        if case .closed = phase { return }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { readAvailable() }
    }

    private func readAvailable() {
        var total = 0
        while !readingPaused && !peerClosed && total < 4 * server.settings.readChunkBytes {
            let result: IOResult<Int>
            do {
                result = try Socket.read(descriptor, into: registry.readBuffer)
            } catch {
                close()
                return
            }
            switch result {
            case .wouldBlock:
                process()
                return
            case .done(0):
                peerClosed = true
            case .done(let count):
                input.append(UnsafeRawBufferPointer(rebasing: registry.readBuffer[0..<count]))
                total += count
                // A short read drained the socket: skip the read that would
                // only say EAGAIN (level-triggered epoll reports more later).
                if count < registry.readBuffer.count {
                    process()
                    return
                }
            }
        }
        process()
    }

    /// Parses and dispatches buffered requests until one is in flight, input
    /// runs out, or output backs up.
    private func process() {
        while true {
            switch phase {
            case .handling, .closing, .closed:
                updateInterest()
                return
            case .idle, .head, .body:
                break
            }
            if output.count - outputOffset > server.settings.outputBytesMax { break }
            if parser.isBetweenRequests {
                if input.isEmpty {
                    if peerClosed { close() }
                    break
                }
                if draining {
                    // Shutting down: do not start on a request that arrived afterwards.
                    close()
                    return
                }
                if case .idle = phase { phase = .head(since: loop.now) }
            }
            switch parser.parse(&input) {
            case .needMore:
                if peerClosed { close() }
                updateInterest()
                return
            case .head(let head):
                if head.hasBody { phase = .body(since: loop.now) }
                if head.expectsContinue && input.isEmpty {
                    queue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                    flush()
                }
            case .request(let request, let keepAlive):
                dispatch(request, keepAlive: keepAlive)
            case .failure(let error):
                requestStarted = loop.now
                let problem = HTTPError(status: error.status, code: error.code, detail: error.detail)
                respond(.problem(problem), to: nil, keepAlive: false, requestID: registry.nextRequestID())
                return
            }
        }
        updateInterest()
    }

    // MARK: Handling

    private func dispatch(_ request: HTTPRequest, keepAlive: Bool) {
        phase = .handling
        requestStarted = loop.now
        var request = request
        request.requestID = Self.acceptableRequestID(request.headers.first(lowercased: "x-request-id")) ?? registry.nextRequestID()
        switch server.router.match(method: request.method, path: request.path) {
        case .notFound:
            respond(.problem(HTTPError(status: 404, code: "not_found", detail: "no such resource")),
                    to: request, keepAlive: keepAlive, requestID: request.requestID)
        case .badPath:
            respond(.problem(HTTPError(status: 400, code: "invalid_path", detail: "the path has a malformed percent-encoding")),
                    to: request, keepAlive: keepAlive, requestID: request.requestID)
        case .methodNotAllowed(let allowed):
            var problem = HTTPError(status: 405, code: "method_not_allowed", detail: "allowed: \(allowed.joined(separator: ", "))")
            problem.headers.set("Allow", allowed.joined(separator: ", "))
            respond(.problem(problem), to: request, keepAlive: keepAlive, requestID: request.requestID)
        case .found(let route, let parameters):
            request.pathParameters = parameters
            request.routePattern = route.pattern
            switch route.handler {
            case .inline(let handler):
                respond(Self.run { try handler(request) }, to: request, keepAlive: keepAlive, requestID: request.requestID)
            case .async(let handler):
                let loop = self.loop
                let request = request
                Task {
                    let response = await Self.run { try await handler(request) }
                    loop.execute { self.respond(response, to: request, keepAlive: keepAlive, requestID: request.requestID) }
                }
            }
        }
    }

    private static func run(_ body: () throws -> HTTPResponse) -> HTTPResponse {
        do { return try body() } catch { return problem(for: error) }
    }

    private static func run(_ body: () async throws -> HTTPResponse) async -> HTTPResponse {
        do { return try await body() } catch { return problem(for: error) }
    }

    private static func problem(for error: any Error) -> HTTPResponse {
        if let error = error as? HTTPError { return .problem(error) }
        // Unexpected: the details stay in our log (by type, never by value),
        // as a JSON line like every other line a node writes.
        FileHandle.standardError.write(Data(#"{"level":"error","event":"unhandled error","type":"\#(type(of: error))"}\#n"#.utf8))
        return .problem(HTTPError(status: 500, code: "internal_error", detail: "the server could not complete the request"))
    }

    /// A client's `X-Request-Id` is echoed if it is 1-128 characters of
    /// `[A-Za-z0-9._:-]`; anything else is replaced (it would end up in logs).
    static func acceptableRequestID(_ candidate: String?) -> String? {
        guard let candidate, (1...128).contains(candidate.utf8.count),
              candidate.utf8.allSatisfy({ byte in
                  (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                      || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
              })
        else { return nil }
        return candidate
    }

    // MARK: Responding

    private func respond(_ response: HTTPResponse, to request: HTTPRequest?, keepAlive: Bool, requestID: String) {
        // The client may have gone while an async handler ran.
        if case .closed = phase { return }
        let persist = keepAlive && !draining && !peerClosed && !server.isDraining
        queue(serialize(response, keepAlive: persist, requestID: requestID))
        server.observer?(HTTPExchange(
            method: request?.method ?? "-", route: request?.routePattern ?? "unmatched", status: response.status,
            durationMicroseconds: max(0, (monotonicMilliseconds() - requestStarted) * 1_000),
            requestBodyBytes: request?.body.count ?? 0, responseBodyBytes: response.body.count, requestID: requestID))
        phase = persist ? .idle(since: loop.now) : .closing
        flush()
        if persist { process() }
    }

    private func serialize(_ response: HTTPResponse, keepAlive: Bool, requestID: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + response.body.count + response.headers.count * 48)
        bytes.append(contentsOf: Self.statusLine(response.status).utf8)
        for (name, value) in response.headers where name != "content-length" && name != "connection" {
            bytes.append(contentsOf: Self.canonical(name).utf8)
            bytes.append(contentsOf: ": ".utf8)
            bytes.append(contentsOf: value.utf8)
            bytes.append(contentsOf: "\r\n".utf8)
        }
        bytes.append(contentsOf: "Content-Length: ".utf8)
        bytes.append(contentsOf: String(response.body.count).utf8)
        bytes.append(contentsOf: "\r\nDate: ".utf8)
        bytes.append(contentsOf: registry.dateHeader.utf8)
        bytes.append(contentsOf: "\r\nX-Request-Id: ".utf8)
        bytes.append(contentsOf: requestID.utf8)
        if !keepAlive { bytes.append(contentsOf: "\r\nConnection: close".utf8) }
        bytes.append(contentsOf: "\r\n\r\n".utf8)
        bytes.append(contentsOf: response.body)
        return bytes
    }

    private static func statusLine(_ status: Int) -> String {
        "HTTP/1.1 \(status) \(HTTPStatus.reason(status))\r\n"
    }

    /// `content-type` → `Content-Type`, for the eyes of people reading dumps;
    /// the common names without building a string.
    private static func canonical(_ name: String) -> String {
        switch name {
        case "content-type": return "Content-Type"
        case "allow": return "Allow"
        case "retry-after": return "Retry-After"
        case "location": return "Location"
        case "cache-control": return "Cache-Control"
        default:
            return name.split(separator: "-", omittingEmptySubsequences: false)
                .map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: "-")
        }
    }

    private func queue(_ bytes: [UInt8]) {
        if output.count == outputOffset {
            output = bytes
            outputOffset = 0
        } else {
            output.append(contentsOf: bytes)
        }
        if outputPendingSince == nil { outputPendingSince = loop.now }
    }

    private func flush() {
        while outputOffset < output.count {
            let result = output.withUnsafeBytes { raw in
                try? Socket.send(descriptor, UnsafeRawBufferPointer(rebasing: raw[outputOffset...]))
            }
            switch result {
            case .done(let written)?:
                outputOffset += written
            case .wouldBlock?:
                updateInterest()
                return
            case nil:
                close()
                return
            }
        }
        output.removeAll(keepingCapacity: output.capacity <= 64 * 1024)
        outputOffset = 0
        outputPendingSince = nil
        if case .closing = phase {
            close()
            return
        }
        updateInterest()
    }

    /// Asks epoll for readability unless paused, and writability while output is pending.
    private func updateInterest() {
        if case .closed = phase { return }
        let handling: Bool
        if case .handling = phase { handling = true } else { handling = false }
        readingPaused = handling && input.count > server.settings.pipelinedBytesMax
        var events: UInt32 = 0
        if !readingPaused && !peerClosed { events |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if outputOffset < output.count { events |= EPOLLOUT.rawValue }
        if events != interest {
            interest = events
            loop.modify(descriptor, events: events)
        }
    }

    // MARK: Deadlines and shutdown

    func checkDeadlines(now: Int64) {
        let settings = server.settings
        if let since = outputPendingSince, now - since > settings.writeTimeoutMilliseconds {
            close()
            return
        }
        switch phase {
        case .idle(let since):
            if draining || now - since > settings.idleTimeoutMilliseconds { close() }
        case .head(let since):
            if draining && input.isEmpty && parser.isBetweenRequests {
                close()
            } else if now - since > settings.headerReadTimeoutMilliseconds {
                timeOut("the request header was not received in time")
            }
        case .body(let since):
            if now - since > settings.bodyReadTimeoutMilliseconds { timeOut("the request body was not received in time") }
        case .handling, .closing, .closed:
            break
        }
    }

    private func timeOut(_ detail: String) {
        requestStarted = loop.now
        respond(.problem(HTTPError(status: 408, code: "request_timeout", detail: detail)), to: nil, keepAlive: false,
                requestID: registry.nextRequestID())
    }

    /// Shutdown has begun: close now if nothing is in flight, else after the
    /// current response.
    func drain() {
        draining = true
        switch phase {
        case .idle:
            close()
        case .head where input.isEmpty && parser.isBetweenRequests:
            close()
        default:
            break
        }
    }

    func close() {
        if case .closed = phase { return }
        phase = .closed
        loop.deregister(descriptor)
        closeDescriptor(descriptor)
        registry.connectionClosed(descriptor)
    }
}
