/// How a route answers. `inline` handlers run on the event loop's thread and
/// must not block (health checks, cached data); `async` handlers run as
/// tasks and may await storage. A thrown `HTTPError` becomes its problem
/// document; any other error becomes a 500 without details.
public enum RouteHandler: Sendable {
    case inline(@Sendable (HTTPRequest) throws -> HTTPResponse)
    case async(@Sendable (HTTPRequest) async throws -> HTTPResponse)
}

/// Decides from a request's head (method, target, headers; the body not
/// read yet) whether its body is read at all: authentication and
/// authorization belong here, so a refused caller never makes the server
/// hold its body. A thrown `HTTPError` is the answer.
public typealias RouteAdmission = @Sendable (HTTPRequest) throws(HTTPError) -> Void

/// Method and path matching with `{name}` parameters, e.g.
/// `/v1/subjects/{pid}/consents`. A path that matches with another method
/// answers 405 with `Allow`; a path that matches nothing answers 404.
/// `HEAD` is served by the `GET` route of a path (the server sends the
/// headers without the body), unless that route says `servesHead: false`.
public struct Router: Sendable {
    public struct Route: Sendable {
        public let method: String
        public let pattern: String
        /// The largest body this route reads; nil: the server's
        /// `limits.bodyBytesMax` (which also caps every route's own).
        public let bodyBytesMax: Int?
        /// Whether a `HEAD` of this `GET` route's path runs its handler. False
        /// for a `GET` that changes state (a one-time release): a `HEAD` would
        /// spend it on an answer whose body nobody reads, so it gets 405.
        public let servesHead: Bool
        let segments: [Segment]
        let admission: RouteAdmission?
        let handler: RouteHandler
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    public enum Match {
        case found(Route, parameters: [String: String])
        case methodNotAllowed(allowed: [String])
        case notFound
        case badPath
    }

    public private(set) var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, bodyBytesMax: Int? = nil, servesHead: Bool = true,
                             admission: RouteAdmission? = nil, _ handler: RouteHandler) {
        precondition(pattern.hasPrefix("/"), "route patterns start with /: \(pattern)")
        let segments = pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { part -> Segment in
            if part.hasPrefix("{") && part.hasSuffix("}") { return .parameter(String(part.dropFirst().dropLast())) }
            return .literal(String(part))
        }
        precondition(!routes.contains { $0.method == method && $0.segments == segments }, "duplicate route \(method) \(pattern)")
        routes.append(Route(method: method, pattern: pattern, bodyBytesMax: bodyBytesMax, servesHead: servesHead,
                            segments: segments, admission: admission, handler: handler))
    }

    public mutating func get(_ pattern: String, _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        add("GET", pattern, .async(handler))
    }

    public mutating func post(_ pattern: String, _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        add("POST", pattern, .async(handler))
    }

    public mutating func put(_ pattern: String, _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        add("PUT", pattern, .async(handler))
    }

    public mutating func delete(_ pattern: String, _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        add("DELETE", pattern, .async(handler))
    }

    public func match(method: String, path: Substring) -> Match {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var decoded: [String] = []
        decoded.reserveCapacity(parts.count)
        for part in parts {
            if !part.utf8.contains(UInt8(ascii: "%")) {
                decoded.append(String(part))
                continue
            }
            guard let segment = PercentEncoding.decode(part) else { return .badPath }
            decoded.append(segment)
        }
        // A path belongs to the most specific pattern that matches it (the
        // fewest parameters): `/v1/x/lookup` is not an `{id}` of `/v1/x/{id}`.
        // That pattern's routes decide between a match and 405 with `Allow`.
        var candidates: [(route: Route, parameters: [String: String])] = []
        for route in routes where route.segments.count == decoded.count {
            if let parameters = Self.bind(route.segments, to: decoded) { candidates.append((route, parameters)) }
        }
        guard let fewest = candidates.map(\.parameters.count).min() else { return .notFound }
        let claiming = candidates.filter { $0.parameters.count == fewest }
        let headServer = claiming.first { $0.route.method == "GET" && $0.route.servesHead }
        if let match = claiming.first(where: { $0.route.method == method }) ?? (method == "HEAD" ? headServer : nil) {
            return .found(match.route, parameters: match.parameters)
        }
        var allowed = Set(claiming.map(\.route.method))
        if headServer != nil { allowed.insert("HEAD") }
        return .methodNotAllowed(allowed: allowed.sorted())
    }

    /// Answers `request` as the server would once its body is read: finds
    /// its route, runs the route's admission and handler, and turns a
    /// refusal or an error into its problem document. For a call another
    /// process already received and admitted (a region's follower hands
    /// its clients' calls to the leader); `requestID` is the one the
    /// receiving server gave it.
    public func respond(to request: HTTPRequest, requestID: String) async -> HTTPResponse {
        var request = request
        request.requestID = requestID
        let matched = match(method: request.method, path: request.path)
        guard case .found(let route, let parameters) = matched else { return .problem(Self.refusal(of: matched)!) }
        request.pathParameters = parameters
        request.routePattern = route.pattern
        if let admission = route.admission {
            do { try admission(request) } catch { return .problem(error) }
        }
        if request.body.count > route.bodyBytesMax ?? .max {
            return .problem(HTTPError(status: 413, code: "body_too_large", detail: "the body exceeds this route's limit"))
        }
        let handled = request
        switch route.handler {
        case .inline(let handler):
            do { return try handler(handled) } catch { return HTTPConnection.problem(for: error) }
        case .async(let handler):
            do { return try await handler(handled) } catch { return HTTPConnection.problem(for: error) }
        }
    }

    /// The answer to a request no route takes: 404, 400 for a malformed
    /// path, 405 with `Allow`; nil for a match.
    static func refusal(of match: Match) -> HTTPError? {
        switch match {
        case .found: return nil
        case .notFound: return HTTPError(status: 404, code: "not_found", detail: "no such resource")
        case .badPath: return HTTPError(status: 400, code: "invalid_path", detail: "the path has a malformed percent-encoding")
        case .methodNotAllowed(let allowed):
            var problem = HTTPError(status: 405, code: "method_not_allowed", detail: "allowed: \(allowed.joined(separator: ", "))")
            problem.headers.set("Allow", allowed.joined(separator: ", "))
            return problem
        }
    }

    private static func bind(_ segments: [Segment], to parts: [String]) -> [String: String]? {
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal):
                guard literal == part else { return nil }
            case .parameter(let name):
                guard !part.isEmpty else { return nil }
                parameters[name] = part
            }
        }
        return parameters
    }
}
