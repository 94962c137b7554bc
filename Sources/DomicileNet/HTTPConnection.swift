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
        /// Nothing more is parsed: what the client still sends is read and
        /// dropped (`discardedBytes`), never buffered.
        case closing
        /// The answer to a request whose body was not read is written and the
        /// write side shut; what the client still sends is read and dropped
        /// (`lingerMilliseconds`, `lingerBytesMax`), so that it reads the
        /// answer instead of a reset; then the connection closes.
        case lingering(since: Int64)
        case closed
    }

    static let lingerMilliseconds: Int64 = 2_000
    /// Bytes a closing or lingering connection reads and drops before it
    /// closes without waiting any longer.
    static let lingerBytesMax = 16 * 1_024 * 1_024

    private let descriptor: Int32
    /// The socket, or TLS over it.
    private let wire: Wire
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
    /// The last response answers a request whose body was left unread.
    private var lingersOnClose = false
    /// Bytes read and dropped after the last response (closing, lingering).
    private var discardedBytes = 0
    /// The last read stopped until the socket is writable (TLS).
    private var readWaitsForWritable = false

    private var server: HTTPServer { registry.server }
    private var loop: EventLoop { registry.loop }

    init(descriptor: Int32, tls: TLSSession?, registry: ConnectionRegistry, now: Int64) {
        self.descriptor = descriptor
        wire = Wire(descriptor: descriptor, tls: tls)
        self.registry = registry
        parser = RequestParser(limits: registry.server.settings.limits)
        // A new connection owes its first request's head (after the TLS handshake) within the header timeout.
        phase = .head(since: now)
    }

    // MARK: Events

    func handle(events: UInt32) {
        if !wire.isEstablished {
            guard handshake() else { return }
            readAvailable()
            return
        }
        if events & EPOLLOUT.rawValue != 0 { flush() }
        let readable = events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        guard readable || (readWaitsForWritable && events & EPOLLOUT.rawValue != 0) else { return }
        switch phase {
        case .closed:
            return
        case .closing, .lingering:
            discardAvailable()
        case .idle, .head, .body, .handling:
            readAvailable()
        }
    }

    /// Advances the TLS handshake; true once it is done. A peer's bad
    /// handshake (or a certificate the server refuses) closes the connection.
    private func handshake() -> Bool {
        guard let tls = wire.tls else { return true }
        let progress: TLSSession.Handshake
        do { progress = try tls.handshake() } catch {
            close()
            return false
        }
        switch progress {
        case .done: return true
        case .wantRead: watch(EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
        case .wantWrite: watch(EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue)
        }
        return false
    }

    /// Request bytes read and not yet parsed (for tests).
    var bufferedInputBytes: Int { input.count }

    private func readAvailable() {
        var total = 0
        while !readingPaused && !peerClosed && total < 4 * server.settings.readChunkBytes {
            let result: IOResult<Int>
            do {
                result = try wire.read(into: registry.readBuffer)
            } catch {
                close()
                return
            }
            readWaitsForWritable = false
            switch result {
            case .wouldBlock:
                readWaitsForWritable = wire.wantsWritable
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
            case .handling, .closing, .lingering, .closed:
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
                if peerClosed {
                    close()
                    return
                }
                guard reserveBufferedBody() else { return }
                updateInterest()
                return
            case .head(let head):
                guard admit(head) else { return }
                if head.hasBody { phase = .body(since: loop.now) }
            case .request(let request, let keepAlive):
                finish(request, keepAlive: keepAlive)
            case .failure(let error):
                requestStarted = loop.now
                let pending = admission
                admission = nil
                lingersOnClose = true
                // A refused request whose body broke the refused-body limit gets its refusal.
                if let pending, case .refused(let refusal) = pending.verdict {
                    respond(.problem(refusal), to: pending.request, keepAlive: false, requestID: pending.request.requestID)
                    return
                }
                let problem = HTTPError(status: error.status, code: error.code, detail: error.detail)
                respond(.problem(problem), to: nil, keepAlive: false, requestID: registry.nextRequestID())
                return
            }
        }
        updateInterest()
    }

    // MARK: Admission (from the head, before the body is read)

    /// What was decided about the request being read, from its head.
    private struct Admission {
        /// The head (no body), with its request id, route and path parameters.
        let request: HTTPRequest
        let verdict: Verdict
    }

    private enum Verdict {
        case admitted(Router.Route)
        /// Refused; a body of at most `refusedBodyBytesMax` is read and dropped
        /// first, so the connection stays usable.
        case refused(HTTPError)
        /// Refused without reading the body: answered at once, then closed.
        case cutOff(HTTPError)
    }

    private var admission: Admission?
    /// Bytes of the server's in-flight body budget reserved for the body being
    /// read; its handler takes them over (`finish`) and releases them when it returns.
    private var bodyReservation = 0

    /// Decides from the head whether the body is read: route, the route's
    /// admission (authentication), the route's body limit and the in-flight
    /// budget. False when the request was answered and the connection is closing.
    private func admit(_ head: RequestHead) -> Bool {
        requestStarted = loop.now
        var request = HTTPRequest(method: head.method, target: head.target, version: head.version, headers: head.headers)
        request.requestID = requestID(from: head.headers)
        let verdict = verdict(for: &request, head)
        admission = Admission(request: request, verdict: verdict)
        switch verdict {
        case .admitted:
            if head.expectsContinue && input.isEmpty {
                queue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                flush()
            }
            return true
        case .refused(let refusal):
            if !head.hasBody || (!head.expectsContinue && parser.restrictBody(to: server.settings.refusedBodyBytesMax) == nil) {
                return true
            }
            cutOff(refusal, request)
            return false
        case .cutOff(let refusal):
            cutOff(refusal, request)
            return false
        }
    }

    private func verdict(for request: inout HTTPRequest, _ head: RequestHead) -> Verdict {
        let match = server.router.match(method: request.method, path: request.path)
        switch match {
        case .notFound, .badPath, .methodNotAllowed:
            return .refused(Router.refusal(of: match)!)
        case .found(let route, let parameters):
            request.pathParameters = parameters
            request.routePattern = route.pattern
            if let admission = route.admission {
                do { try admission(request) } catch { return .refused(error) }
            }
            if let error = parser.restrictBody(to: route.bodyBytesMax ?? .max) {
                return .cutOff(HTTPError(status: error.status, code: error.code, detail: error.detail))
            }
            if let declared = head.declaredBodyBytes, declared > 0 {
                guard server.reserveBody(declared) else { return .cutOff(Self.overloaded) }
                bodyReservation = declared
            }
            return .admitted(route)
        }
    }

    /// A chunked body reserves its running total as it arrives (a declared
    /// length was reserved whole at admission). False when over the budget:
    /// the request was answered 503 and the connection is closing.
    private func reserveBufferedBody() -> Bool {
        guard parser.isReadingBody, let admission, case .admitted = admission.verdict else { return true }
        let held = parser.bodyBytesRead + input.count
        guard held > bodyReservation else { return true }
        guard server.reserveBody(held - bodyReservation) else {
            releaseBodyReservation()
            self.admission = nil
            respond(.problem(Self.overloaded), to: admission.request, keepAlive: false, requestID: admission.request.requestID)
            return false
        }
        bodyReservation = held
        return true
    }

    /// The connection's reservation, now held by the caller.
    private func takeBodyReservation() -> Int {
        defer { bodyReservation = 0 }
        return bodyReservation
    }

    private func releaseBodyReservation() {
        server.releaseBody(takeBodyReservation())
    }

    private static var overloaded: HTTPError {
        HTTPError(status: 503, code: "overloaded", detail: "the server holds as many request bodies as it may; retry later",
                  headers: ["Retry-After": "1"])
    }

    /// Answers without reading the body, and closes.
    private func cutOff(_ refusal: HTTPError, _ request: HTTPRequest) {
        admission = nil
        lingersOnClose = true
        respond(.problem(refusal), to: request, keepAlive: false, requestID: request.requestID)
    }

    /// A client's request id when it is acceptable (`acceptableRequestID`
    /// and the server's filter), else a generated one.
    private func requestID(from headers: HTTPHeaders) -> String {
        if let candidate = Self.acceptableRequestID(headers.first(lowercased: "x-request-id")),
           server.requestIDFilter?(candidate) ?? true {
            return candidate
        }
        return registry.nextRequestID()
    }

    // MARK: Handling

    /// The whole request is read: its handler runs, or its refusal is sent.
    private func finish(_ parsed: HTTPRequest, keepAlive: Bool) {
        guard let admission else { preconditionFailure("a request completes after its head was admitted") }
        self.admission = nil
        phase = .handling
        requestStarted = loop.now
        var request = parsed
        request.requestID = admission.request.requestID
        request.pathParameters = admission.request.pathParameters
        request.routePattern = admission.request.routePattern
        switch admission.verdict {
        case .refused(let refusal), .cutOff(let refusal):
            respond(.problem(refusal), to: request, keepAlive: keepAlive, requestID: request.requestID)
        case .admitted(let route):
            // The body is the handler's now: its share of the budget is held
            // until the handler returns, even if the client goes first.
            let reserved = takeBodyReservation()
            let server = self.server
            switch route.handler {
            case .inline(let handler):
                let response = Self.run { try handler(request) }
                server.releaseBody(reserved)
                respond(response, to: request, keepAlive: keepAlive, requestID: request.requestID)
            case .async(let handler):
                let loop = self.loop
                let request = request
                Task {
                    let response = await Self.run { try await handler(request) }
                    server.releaseBody(reserved)
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

    static func problem(for error: any Error) -> HTTPResponse {
        if let error = error as? HTTPError { return .problem(error) }
        // Unexpected: the details stay in our log (by type, never by value),
        // as a JSON line like every other line a node writes.
        FileHandle.standardError.write(Data(#"{"level":"error","event":"unhandled error","type":"\#(type(of: error))"}\#n"#.utf8))
        return .problem(HTTPError(status: 500, code: "internal_error", detail: "the server could not complete the request"))
    }

    /// A client's `X-Request-Id` is kept if it is 1-64 characters of
    /// `[A-Za-z0-9._:-]` (and the server's filter accepts it); anything else
    /// is replaced (it ends up in logs and the audit log).
    static func acceptableRequestID(_ candidate: String?) -> String? {
        guard let candidate, (1...64).contains(candidate.utf8.count),
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
        // A refused or timed-out request's body is no longer held (a handled
        // one's reservation went with it to the handler).
        releaseBodyReservation()
        let persist = keepAlive && !draining && !peerClosed && !server.isDraining
        // HEAD: the headers a GET would get (its Content-Length included), no body.
        let sendsBody = request?.method != "HEAD"
        queue(serialize(response, keepAlive: persist, requestID: requestID, sendsBody: sendsBody))
        server.observer?(HTTPExchange(
            method: request?.method ?? "-", route: request?.routePattern ?? "unmatched", status: response.status,
            durationMicroseconds: max(0, (monotonicMilliseconds() - requestStarted) * 1_000),
            requestBodyBytes: request?.body.count ?? 0, responseBodyBytes: sendsBody ? response.body.count : 0, requestID: requestID))
        if persist {
            phase = .idle(since: loop.now)
        } else {
            // Nothing more is parsed: pipelined input is dropped, and so is what still arrives.
            phase = .closing
            input = InputBuffer()
        }
        flush()
        if persist { process() }
    }

    private func serialize(_ response: HTTPResponse, keepAlive: Bool, requestID: String, sendsBody: Bool) -> [UInt8] {
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
        if sendsBody { bytes.append(contentsOf: response.body) }
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
                try? wire.send(UnsafeRawBufferPointer(rebasing: raw[outputOffset...]))
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
            if lingersOnClose && !peerClosed { linger() } else { close() }
            return
        }
        updateInterest()
    }

    private func linger() {
        lingersOnClose = false
        wire.shutdownWrite()
        phase = .lingering(since: loop.now)
        updateInterest()
    }

    /// Closing or lingering: reads and drops what arrived. Closes at an error
    /// or past `lingerBytesMax` (counted from the last response); at the
    /// client's end of stream a lingering connection closes, and a closing
    /// one stops reading and goes on writing its response.
    private func discardAvailable() {
        while !peerClosed {
            switch try? wire.read(into: registry.readBuffer) {
            case .wouldBlock?:
                return
            case .done(let count)? where count > 0:
                discardedBytes += count
                if discardedBytes > Self.lingerBytesMax {
                    close()
                    return
                }
            case .done?:
                if case .lingering = phase {
                    close()
                    return
                }
                peerClosed = true
                updateInterest()
            case nil:
                close()
                return
            }
        }
    }

    /// Asks epoll for readability unless paused, and writability while output is pending.
    private func updateInterest() {
        if case .closed = phase { return }
        let handling: Bool
        if case .handling = phase { handling = true } else { handling = false }
        readingPaused = handling && input.count > server.settings.pipelinedBytesMax
        var events: UInt32 = 0
        if !readingPaused && !peerClosed { events |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if outputOffset < output.count || readWaitsForWritable { events |= EPOLLOUT.rawValue }
        watch(events)
    }

    private func watch(_ events: UInt32) {
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
        case .lingering(let since):
            if now - since > Self.lingerMilliseconds { close() }
        case .handling, .closing, .closed:
            break
        }
    }

    private func timeOut(_ detail: String) {
        // A TLS handshake not finished: no answer can be sent, and waiting to write one would hold the connection.
        guard wire.isEstablished else {
            close()
            return
        }
        requestStarted = loop.now
        respond(.problem(HTTPError(status: 408, code: "request_timeout", detail: detail)), to: nil, keepAlive: false,
                requestID: registry.nextRequestID())
    }

    /// Shutdown has begun: close now if nothing is in flight, else after the
    /// current response.
    func drain() {
        draining = true
        switch phase {
        case .idle, .lingering:
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
        releaseBodyReservation()
        loop.deregister(descriptor)
        wire.close()
        registry.connectionClosed(descriptor)
    }
}
