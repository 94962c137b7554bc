import DomicileNet

extension DomicileClient {
    /// How a client reaches a Domicile federation and how hard it tries.
    public struct Configuration: Sendable {
        /// Nodes to start from, as `host:port` (any node of any region). A
        /// call goes to the first that answers; on a connection error the
        /// next one is tried, and the one that answered is tried first next
        /// time.
        public var seeds: [String]
        /// The bearer token sent on every `/v1` call (its principal's roles
        /// decide what the calls may do). `withToken(_:)` gives a client
        /// with another token that shares this one's connections.
        public var token: String?
        /// A PEM file of the certificate authority that signed the nodes'
        /// certificates (`cluster init` writes `ca.pem`): calls go over TLS
        /// (1.2 or 1.3), and a node whose certificate does not chain to it,
        /// has expired, or does not name the seed's IP address is refused.
        /// A file that cannot be loaded is `invalidConfiguration`. Nil:
        /// plaintext.
        public var caFile: String?
        /// Attempts per call (the first included) when the node answers 429
        /// or 503, or no endpoint can be reached. At least 1.
        public var attemptsMax = 4
        /// Back-off before the second attempt; doubled per attempt, jittered
        /// (a uniform draw from half of it to all of it), and capped by
        /// `retryDelayMaxMilliseconds`. A `Retry-After` from the node is
        /// waited in full instead when it is longer.
        public var retryDelayMilliseconds: Int64 = 100
        /// The longest single wait, `Retry-After` included: a node asking
        /// for longer than this fails the call with its problem instead.
        public var retryDelayMaxMilliseconds: Int64 = 10_000
        /// 421 `misdirected` answers followed per call (each names the home
        /// region's nodes). 0: a 421 fails the call with its problem.
        public var misdirectedHopsMax = 2
        /// How long one exchange with one node may take, from connecting to
        /// the end of its response.
        public var requestTimeoutMilliseconds: Int64 = 10_000
        /// How long connecting to one node may take before the next is tried.
        public var connectTimeoutMilliseconds: Int64 = 1_000

        public init(seeds: [String], token: String? = nil, caFile: String? = nil) {
            self.seeds = seeds
            self.token = token
            self.caFile = caFile
        }
    }
}

/// Why a client could not be made, or a call could not be carried out, when
/// no node answered it with a problem of its own (that is `DomicileProblem`).
public enum DomicileClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration cannot work: no seeds, a seed that is not `host:port`, a bad limit.
    case invalidConfiguration(String)
    /// The request cannot be sent as it is (a header with a line break, a body that does not encode).
    case invalidRequest(String)
    /// No endpoint could be reached (after every attempt); the last reason.
    case unreachable(String)
    /// A node answered with something this client cannot read.
    case invalidResponse(status: Int, reason: String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let reason): return "invalid client configuration: \(reason)"
        case .invalidRequest(let reason): return "invalid request: \(reason)"
        case .unreachable(let reason): return "no Domicile node could be reached: \(reason)"
        case .invalidResponse(let status, let reason): return "unreadable response (status \(status)): \(reason)"
        }
    }
}
