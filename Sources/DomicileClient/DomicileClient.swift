import DomicileNet
import Foundation

/// A client for the whole Domicile HTTP API (API.md): typed requests and
/// responses per area (in the `DomicileClient+…` files), refusals as
/// `DomicileProblem` with their stable `code`, retries with jittered
/// back-off on 429 and 503 (never sooner than the node's `Retry-After`),
/// 421 `misdirected` followed to the home region's nodes, and failover
/// from seed to seed on connection errors. docs/CLIENT.md shows its use.
///
/// One client holds one pool of keep-alive connections per node; make one
/// and share it (it is `Sendable`). `withToken(_:)` gives a client for
/// another principal over the same connections.
public final class DomicileClient: Sendable {
    public let configuration: Configuration
    let transport: any Transport
    let routing: Routing
    let retryPolicy: RetryPolicy

    public convenience init(configuration: Configuration) throws(DomicileClientError) {
        guard !configuration.seeds.isEmpty else { throw .invalidConfiguration("seeds: name at least one node as host:port") }
        var seeds: [SocketAddress] = []
        for seed in configuration.seeds {
            guard let address = try? SocketAddress(parsing: seed) else { throw .invalidConfiguration("seeds: \(seed) is not host:port") }
            seeds.append(address)
        }
        guard configuration.attemptsMax >= 1 else { throw .invalidConfiguration("attemptsMax must be at least 1") }
        guard configuration.retryDelayMilliseconds >= 0, configuration.retryDelayMaxMilliseconds >= configuration.retryDelayMilliseconds else {
            throw .invalidConfiguration("retry delays must be non-negative, the maximum at least the first")
        }
        guard configuration.misdirectedHopsMax >= 0 else { throw .invalidConfiguration("misdirectedHopsMax must not be negative") }
        guard configuration.requestTimeoutMilliseconds > 0, configuration.connectTimeoutMilliseconds > 0 else {
            throw .invalidConfiguration("timeouts must be positive")
        }
        var tls: TLSContext?
        if let caFile = configuration.caFile {
            do { tls = try TLSContext.client(caFile: caFile) } catch { throw .invalidConfiguration("caFile: \(error.reason)") }
        }
        self.init(configuration: configuration,
                  transport: HTTPTransport(connectTimeoutMilliseconds: configuration.connectTimeoutMilliseconds,
                                           requestTimeoutMilliseconds: configuration.requestTimeoutMilliseconds, tls: tls),
                  routing: Routing(seeds: seeds))
    }

    /// A client of the nodes at `seeds` (`host:port`) calling with `token`.
    public convenience init(seeds: [String], token: String? = nil) throws(DomicileClientError) {
        try self.init(configuration: Configuration(seeds: seeds, token: token))
    }

    private init(configuration: Configuration, transport: any Transport, routing: Routing) {
        self.configuration = configuration
        self.transport = transport
        self.routing = routing
        retryPolicy = RetryPolicy(configuration)
    }

    /// The same client calling as another principal: same nodes, connections and learned routes.
    public func withToken(_ token: String?) -> DomicileClient {
        var configuration = configuration
        configuration.token = token
        return DomicileClient(configuration: configuration, transport: transport, routing: routing)
    }

    // MARK: Calls

    /// One API call before it is sent.
    struct Call: Sendable {
        var method: String
        /// Path and query, percent-encoded.
        var target: String
        var body: [UInt8] = []
        var contentType: String?
        var accept = "application/json"
        /// Repeating it is harmless: it may be sent again after a lost
        /// connection or a 503 `no_quorum` (which may have taken effect).
        var idempotent: Bool
        /// The region the call is about (a pid's, a registration's), so it
        /// goes to that region's nodes when a 421 has named them.
        var region: String?
        /// Statuses besides 2xx that are answers, not problems (`/readyz`'s 503).
        var answers: Set<Int> = []
        /// Overrides `Configuration.requestTimeoutMilliseconds` for a call that waits long by design.
        var timeoutMilliseconds: Int64?

        init(_ method: String, _ target: String, idempotent: Bool? = nil, region: String? = nil) {
            self.method = method
            self.target = target
            self.idempotent = idempotent ?? ["GET", "HEAD", "PUT", "DELETE"].contains(method)
            self.region = region
        }

        /// The same call with `value` as its JSON body.
        func json(_ value: some Encodable) throws -> Call {
            var call = self
            do { call.body = Array(try DomicileClient.encoder.encode(value)) } catch {
                throw DomicileClientError.invalidRequest("the body cannot be encoded as JSON: \(error)")
            }
            call.contentType = "application/json"
            return call
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Sends `call` and decodes its answer as `Response`.
    func send<Response: Decodable>(_ call: Call, as type: Response.Type = Response.self) async throws -> Response {
        let response = try await send(call)
        do {
            return try JSONDecoder().decode(Response.self, from: Data(response.body))
        } catch {
            throw DomicileClientError.invalidResponse(status: response.status, reason: "not a \(Response.self): \(error)")
        }
    }

    /// Sends `call` until it is answered: through the seeds (or the nodes
    /// a 421 named), retrying what may be retried, and returns the
    /// response; a refusal is thrown as its `DomicileProblem`.
    func send(_ call: Call) async throws -> HTTPClientResponse {
        var attempt = 1
        var hops = 0
        var candidates = routing.candidates(for: call.region)
        while true {
            let waitMilliseconds: Int64
            switch try await exchange(call, trying: candidates) {
            case .answered(let response) where (200..<300).contains(response.status) || call.answers.contains(response.status):
                return response
            case .answered(let response):
                let problem = DomicileProblem(response: response)
                if response.status == 421, hops < configuration.misdirectedHopsMax, let nodes = homeNodes(problem) {
                    hops += 1
                    candidates = nodes
                    continue
                }
                guard Self.mayRetry(problem, call),
                      let wait = retryPolicy.delayMilliseconds(afterAttempt: attempt, retryAfterSeconds: problem.retryAfterSeconds,
                                                               jitter: Double.random(in: 0..<1)) else { throw problem }
                waitMilliseconds = wait
            case .unreachable(let reason, let retryable):
                guard retryable, let wait = retryPolicy.delayMilliseconds(afterAttempt: attempt, retryAfterSeconds: nil,
                                                                         jitter: Double.random(in: 0..<1)) else {
                    throw DomicileClientError.unreachable(reason)
                }
                waitMilliseconds = wait
            }
            try await Task.sleep(for: .milliseconds(waitMilliseconds))
            attempt += 1
        }
    }

    private enum Outcome {
        case answered(HTTPClientResponse)
        /// No candidate answered; `retryable`: the call may be sent again.
        case unreachable(String, retryable: Bool)
    }

    /// Tries `candidates` in order until one answers: the next is tried
    /// when nothing reached a node, or when the call is idempotent.
    private func exchange(_ call: Call, trying candidates: [SocketAddress]) async throws -> Outcome {
        let request = TransportRequest(method: call.method, target: call.target, headers: headers(for: call), body: call.body,
                                       timeoutMilliseconds: call.timeoutMilliseconds ?? configuration.requestTimeoutMilliseconds)
        var reasons: [String] = []
        for node in candidates {
            do {
                let response = try await transport.exchange(request, with: node)
                routing.answered(node)
                return .answered(response)
            } catch {
                try Task.checkCancellation()
                switch error {
                case .notSent(let reason):
                    reasons.append(reason)
                case .lost(let reason) where call.idempotent:
                    reasons.append(reason)
                case .lost(let reason):
                    return .unreachable("\(reason) (the call may have taken effect, so it was not sent again)", retryable: false)
                case .unsendable(let reason):
                    throw DomicileClientError.invalidRequest(reason)
                }
            }
        }
        return .unreachable(reasons.last ?? "no node to try", retryable: true)
    }

    private func headers(for call: Call) -> HTTPHeaders {
        var headers = HTTPHeaders()
        if let token = configuration.token { headers.set("Authorization", "Bearer \(token)") }
        headers.set("Accept", call.accept)
        if let contentType = call.contentType { headers.set("Content-Type", contentType) }
        return headers
    }

    /// The home region's nodes a 421 names, learned for later calls; nil if it names none this client can reach.
    private func homeNodes(_ problem: DomicileProblem) -> [SocketAddress]? {
        let nodes = problem.nodes.compactMap { try? SocketAddress(parsing: $0.http) }
        guard !nodes.isEmpty else { return nil }
        if let region = problem.homeRegion { routing.learn(region: region, nodes: nodes) }
        return nodes
    }

    /// 429 always (nothing was done); 503 unless it is `no_quorum` for a
    /// call that is not idempotent (the write may still take effect, and
    /// sending it again could apply it twice).
    static func mayRetry(_ problem: DomicileProblem, _ call: Call) -> Bool {
        switch problem.status {
        case 429: return true
        case 503: return problem.code != .noQuorum || call.idempotent
        default: return false
        }
    }

    // MARK: Paths

    /// `value` as one path segment or query value: everything but unreserved characters percent-encoded.
    static func escaped(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}
