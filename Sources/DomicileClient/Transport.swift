import DomicileNet

/// One HTTP exchange as the client makes it, so that retries, failover and
/// 421 following stay the same whatever carries the bytes (plaintext, or
/// TLS given `Configuration.caFile`).
protocol Transport: Sendable {
    func exchange(_ request: TransportRequest, with node: SocketAddress) async throws(TransportFailure) -> HTTPClientResponse
}

struct TransportRequest: Sendable {
    let method: String
    /// Path and query, already percent-encoded.
    let target: String
    let headers: HTTPHeaders
    let body: [UInt8]
    let timeoutMilliseconds: Int64
}

/// Why an exchange produced no response, split by what the caller may do about it.
enum TransportFailure: Error, Sendable {
    /// Nothing reached the node (it could not be connected to, or the
    /// client had no connection to spare): any other node may be tried.
    case notSent(String)
    /// The request may have reached the node: only an idempotent call may be sent again.
    case lost(String)
    /// The request itself cannot be sent (a line break in a header, say).
    case unsendable(String)

    var reason: String {
        switch self {
        case .notSent(let reason), .lost(let reason), .unsendable(let reason): return reason
        }
    }
}

/// HTTP/1.1 over DomicileNet's client: its keep-alive pools and deadlines,
/// over TLS when given a client context (`Configuration.caFile`).
struct HTTPTransport: Transport {
    let client: HTTPClient

    init(connectTimeoutMilliseconds: Int64, requestTimeoutMilliseconds: Int64, tls: TLSContext?) {
        var settings = HTTPClient.Settings()
        settings.tls = tls
        settings.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        settings.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        // A caller's concurrent calls to one node wait for a connection rather than fail at once.
        settings.waitingRequestsPerPeerMax = 256
        client = HTTPClient(settings: settings)
    }

    func exchange(_ request: TransportRequest, with node: SocketAddress) async throws(TransportFailure) -> HTTPClientResponse {
        do {
            return try await client.send(request.method, request.target, to: node, headers: request.headers, body: request.body,
                                         timeoutMilliseconds: request.timeoutMilliseconds)
        } catch let failure as HTTPClient.Failure {
            switch failure {
            // A refused certificate: nothing was sent (another node may hold a good one).
            case .connectFailed, .poolExhausted, .tlsFailed: throw .notSent(failure.description)
            case .invalidRequest: throw .unsendable(failure.description)
            case .timedOut, .connectionClosed, .malformedResponse, .cancelled: throw .lost(failure.description)
            }
        } catch {
            throw .lost("\(error)")
        }
    }
}
