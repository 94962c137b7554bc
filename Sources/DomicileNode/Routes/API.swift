import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Builds the router: every `/v1` route authenticates the bearer token and
/// checks the caller's roles before its handler runs.
struct API {
    private(set) var router = Router()
    let services: NodeServices

    init(services: NodeServices) { self.services = services }

    /// `roles`: the caller needs one of them; empty means any authenticated
    /// principal. `bodyBytesMax` overrides the configured body limit for
    /// this route (the server's own limit is the largest of them); GET and
    /// DELETE read no body (limit 0). The server checks the token (the route's admission)
    /// and the body limit from the request's head, before reading the body;
    /// roles are checked here, so a 403 is audited like any other refusal.
    /// `limited`: reads and searches, which draw on the caller's rate limit
    /// and count towards access-anomaly detection. A refusal of an
    /// authenticated call that names a subject is audited (`RefusalAudit`).
    /// `servesHead: false`: a GET that changes state (a one-time release)
    /// answers HEAD 405, so a HEAD never spends what only the GET may.
    /// (A HEAD of any other GET is audited as the read it is: its status and
    /// `Content-Length` say something about the subject.)
    /// `local`: answered by this node itself (its own view of the cluster),
    /// never by the region's leader; every other call a follower forwards
    /// to the leader (`RegionRouting`).
    mutating func route(_ method: String, _ pattern: String, roles: Set<Role>, bodyBytesMax: Int? = nil, limited: Bool = false,
                        servesHead: Bool = true, local: Bool = false, _ handler: @escaping @Sendable (APIRequest) async throws -> HTTPResponse) {
        let services = self.services
        let limit = bodyBytesMax ?? (Self.readsNoBody(method) ? 0 : services.configuration.routeBodyBytesMax)
        let guarded: @Sendable (HTTPRequest, RefusalTrail) async throws -> HTTPResponse = { request, trail in
            let principal = try Self.authenticate(request, services: services)
            trail.authenticated(principal)
            guard roles.isEmpty || !roles.isDisjoint(with: principal.roles) else { throw APIError.forbidden(roles) }
            let now = services.clock.now()
            if limited, let wait = services.rateLimiter.take(principal.name, now: now) {
                services.metrics.increment("domicile_rate_limited_total", labels: ["route": pattern])
                throw APIError.rateLimited(retryAfterSeconds: wait)
            }
            do {
                return try await handler(APIRequest(http: request, call: CallContext(principal: principal, now: now, requestID: request.requestID,
                                                                                  isRead: limited, refusals: trail, services: services)))
            } catch {
                throw APIError.problem(for: error, logger: services.logger, requestID: request.requestID)
            }
        }
        let admission: RouteAdmission = { request throws(HTTPError) in _ = try Self.authenticate(request, services: services) }
        router.add(method, pattern, bodyBytesMax: limit, servesHead: servesHead, admission: admission,
                   .async { request in
                       if !local {
                           do {
                               if let answer = try await RegionRouting.forwardIfNeeded(request, services: services) { return answer }
                           } catch {
                               throw APIError.problem(for: error, logger: services.logger, requestID: request.requestID)
                           }
                       }
                       return try await RefusalAudit.run(request, pattern: pattern, services: services, guarded)
                   })
    }

    /// Methods whose routes take no body unless they declare a limit.
    static func readsNoBody(_ method: String) -> Bool {
        method == "GET" || method == "HEAD" || method == "DELETE"
    }

    /// A route for the other nodes of the region: no bearer token; the
    /// handler authenticates the sealed body itself (`RegionErasure`). The
    /// body limit is checked from the headers, like every route's.
    mutating func peer(_ method: String, _ pattern: String, bodyBytesMax: Int,
                       _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        router.add(method, pattern, bodyBytesMax: bodyBytesMax, .async(handler))
    }

    /// Unauthenticated routes (health, readiness, metrics); they read no body.
    mutating func open(_ method: String, _ pattern: String, _ handler: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) {
        router.add(method, pattern, bodyBytesMax: 0, .inline(handler))
    }

    static func authenticate(_ request: HTTPRequest, services: NodeServices) throws(HTTPError) -> Principal {
        guard let header = request.headers["authorization"], let token = bearerToken(header),
              let principal = services.principals.authenticate(token: token) else { throw APIError.unauthorized() }
        return principal
    }

    /// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 section 2.1).
    static func bearerToken(_ header: String) -> String? {
        let utf8 = header.utf8
        guard utf8.count > 7, let space = utf8.firstIndex(of: UInt8(ascii: " ")),
              header[..<space].caseInsensitiveCompare("bearer") else { return nil }
        let token = header[header.index(after: space)...].drop { $0 == " " }
        return token.isEmpty ? nil : String(token)
    }
}
