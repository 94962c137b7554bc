import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Everything the request handlers share: configuration, storage, keys,
/// policy, principals, clock, ids, metrics and logs.
final class NodeServices: Sendable {
    let configuration: NodeConfiguration
    let store: Store
    let keys: RegionKeys
    let policy: ResidencyPolicy
    let principals: Principals
    let clock: any Clock
    /// Every id the node mints (receipts, charges, releases, erasures…).
    let ids: any IDGenerator
    /// Every random draw of an operation (a release's noise, an export's).
    let random: any RandomSource
    let metrics: Metrics
    let logger: Logger
    /// This run of the node: gossip's member identity, the `listening` log line and `/v1/cluster`.
    let bootID: UInt64
    /// Purposes the policy allows in this region, and those a GPC signal revokes (computed once).
    let regionPurposes: Set<Purpose>
    let gpcPurposes: Set<Purpose>
    let rateLimiter: RateLimiter
    let accessMonitor: AccessMonitor
    /// Threads for long reads (an aggregate's scan over every subject), so
    /// they never hold one of the cooperative threads the server runs on.
    let scans = BlockingPool(name: "scans", threadsMax: 2)
    let lifecycle = Locked(Lifecycle.starting)
    /// The vector indexes, loaded at start.
    let vectors = VectorCollections()
    /// Membership, once started (nil when the node runs without gossip).
    let gossip = Locked<GossipService?>(nil)
    /// Calls to the other nodes of the region (`RegionErasure`).
    let peerClient = HTTPClient()

    enum Lifecycle: Sendable, Equatable {
        case starting
        case serving
        case draining
    }

    var region: RegionID { configuration.region }
    /// The boot id as logged and reported: lowercase hexadecimal.
    var bootIDText: String { String(bootID, radix: 16) }

    init(configuration: NodeConfiguration, store: Store, keys: RegionKeys, policy: ResidencyPolicy, principals: Principals,
         clock: any Clock, ids: any IDGenerator, random: any RandomSource, metrics: Metrics, logger: Logger, bootID: UInt64) {
        self.configuration = configuration
        self.store = store
        self.keys = keys
        self.policy = policy
        self.principals = principals
        self.clock = clock
        self.ids = ids
        self.random = random
        self.metrics = metrics
        self.logger = logger
        self.bootID = bootID
        regionPurposes = Set(policy.purposes.keys.filter { policy.basis(for: $0, in: configuration.region) != nil })
        gpcPurposes = policy.gpcPurposes
        rateLimiter = RateLimiter(settings: .init(ratePerSecond: configuration.limits.readRatePerSecond,
                                                  burst: configuration.limits.readBurst))
        accessMonitor = AccessMonitor(distinctSubjectsPerMinute: configuration.limits.distinctSubjectsPerMinute)
    }

    /// Live nodes of `region`, as far as this node's membership knows.
    func liveNodes(in region: RegionID) -> [NodeAddress] { gossip.value?.liveNodes(in: region) ?? [] }

    /// A pid from a path, owned by this region: else 400 or 421.
    func homePID(_ text: String) throws(HTTPError) -> PID {
        let pid = try knownPID(text)
        guard pid.region == region else { throw APIError.misdirected(home: pid.region, nodes: liveNodes(in: pid.region)) }
        return pid
    }

    /// A pid from a request, of a region of the policy: else 400 `invalid_pid`
    /// (no node anywhere could hold it, so it is malformed, not misdirected).
    func knownPID(_ text: String) throws(HTTPError) -> PID {
        let pid: PID
        do { pid = try PID(parsing: text) } catch {
            if case .invalidPID(let reason) = error { throw APIError.invalidPID(reason) }
            throw APIError.invalidPID("unparseable")
        }
        guard policy.isKnown(pid.region) else { throw APIError.invalidPID("its region is not in the residency policy") }
        return pid
    }

    /// Reads a subject's data in one snapshot. An unknown subject is audited
    /// as `not_found` for `action` and answered 404 `unknown_subject`.
    func readSubject<T: Sendable>(_ pid: PID, action: String, request: APIRequest,
                                  _ read: (Database) throws -> T) async throws -> T {
        let found = try store.snapshot { database -> T? in
            guard try SubjectRecords.isLive(pid, keys: keys, in: database) else { return nil }
            return try read(database)
        }
        guard let found else {
            try await audit(request.event(action, pid: pid.rawValue, outcome: "not_found"))
            request.refusals.markAudited()
            throw APIError.unknownSubject()
        }
        return found
    }

    /// Whether `purpose` may be processed for a subject with these grants now.
    func coverage(of purpose: Purpose, grants: [Purpose: ActiveConsent], now: Timestamp) -> Coverage {
        ConsentFolding.coverage(of: purpose, grants: grants, policyBasis: policy.basis(for: purpose, in: region), now: now)
    }

    /// Until when (milliseconds since the epoch) a subject's data may serve
    /// `purpose`: forever under a non-consent basis of the policy; under
    /// consent, until its grant expires (`grant`: the grant's expiry, `.max`
    /// without one; nil when there is no grant). `Int64.min`: not at all.
    func eligibleUntil(_ purpose: Purpose, grant: Int64?) -> Int64 {
        guard let basis = policy.basis(for: purpose, in: region) else { return .min }
        if basis != .consent { return .max }
        return grant ?? .min
    }

    /// The same, from a subject's grants.
    func eligibleUntil(_ purpose: Purpose, grants: [Purpose: ActiveConsent]) -> Int64 {
        eligibleUntil(purpose, grant: grants[purpose].map { $0.expiresAt?.milliseconds ?? .max })
    }

    /// A purpose from a request, allowed in this region by the policy; else
    /// 422 `unknown_purpose` naming `field`.
    func regionPurpose(_ text: String, field: String) throws(HTTPError) -> Purpose {
        guard let purpose = try? Purpose(text), regionPurposes.contains(purpose) else { throw APIError.unknownPurpose(field) }
        return purpose
    }

    /// A write about one subject. When `body` refuses it (an `HTTPError`,
    /// which rolls its transaction back), the refusal is audited for
    /// `action` (outcome `refused:<code>`) before it is rethrown. Whatever
    /// the failure, the subject's entries in the vector indexes are put
    /// back as committed.
    @discardableResult
    func writeAudited<T: Sendable>(_ request: APIRequest, action: String, pid: PID, purpose: String? = nil,
                                   _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await store.write(body)
        } catch let error as HTTPError {
            try await resynchronizeVectors(of: [pid])
            let event = request.event(action, pid: pid.rawValue, purpose: purpose, outcome: RefusalAudit.outcome(error))
            if await auditRefusal([event], code: error.code, requestID: request.requestID) { request.refusals.markAudited() }
            throw error
        } catch {
            try? await resynchronizeVectors(of: [pid])
            throw error
        }
    }

    /// After a failed write that may have changed vector indexes: puts the
    /// subjects' vectors back as committed (on the writer, in commit order).
    func resynchronizeVectors(of pids: [PID]) async throws {
        guard !pids.isEmpty, !vectors.collections(for: nil).isEmpty else { return }
        try await store.write { database in
            for pid in pids { try self.vectors.resynchronize(pid, services: self, in: database) }
        }
    }

    /// Runs a long read on a snapshot, on a thread of `scans`.
    func scan<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            scans.submit { [store] in continuation.resume(with: Result { try store.snapshot(body) }) }
        }
    }

    /// Appends an audit event in its own transaction (for reads, whose audit
    /// record must be durable before the data leaves the node).
    func audit(_ event: AuditEvent) async throws {
        try await store.write { try AuditLog.append(event, to: $0) }
        metrics.countAudit(action: event.action, outcome: event.outcome)
    }
}

/// One authenticated API call.
struct APIRequest: Sendable {
    let http: HTTPRequest
    let principal: Principal
    let now: Timestamp
    let services: NodeServices
    /// A read or search: rate-limited, and watched by the access monitor.
    let isRead: Bool
    /// Tells the route whether this call's refusal still needs auditing.
    let refusals: RefusalTrail

    var requestID: String { http.requestID }

    /// The audit event of this call. Every access to a subject's data is
    /// audited, so for a read, building an event that names a pid is also
    /// where the access monitor counts the subject as touched.
    func event(_ action: String, pid: String? = nil, purpose: String? = nil, outcome: String = "ok", detail: String? = nil) -> AuditEvent {
        if isRead, let pid { services.touched(pid, by: principal, request: self) }
        return AuditEvent(at: now, principal: principal.name, action: action, pid: pid, purpose: purpose, outcome: outcome,
                          requestID: requestID, detail: detail)
    }
}

extension NodeServices {
    /// Counts `pid` as touched by `principal`; the touch that crosses the
    /// per-minute limit is recorded as an access anomaly (audit and metric).
    func touched(_ pid: String, by principal: Principal, request: APIRequest) {
        guard let count = accessMonitor.touch(principal.name, pid: pid, now: request.now) else { return }
        metrics.increment("domicile_access_anomalies_total", labels: ["principal": principal.name])
        logger.warning("access anomaly", ["principal": .string(principal.name), "distinct_subjects": .int(Int64(count)),
                                          "request_id": .string(request.requestID)])
        let event = AuditEvent(at: request.now, principal: principal.name, action: "access.anomaly", outcome: "flagged",
                               requestID: request.requestID,
                               detail: "distinct_subjects>\(accessMonitor.distinctSubjectsPerMinute)/min")
        Task { try? await audit(event) }
    }
}

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
    mutating func route(_ method: String, _ pattern: String, roles: Set<Role>, bodyBytesMax: Int? = nil, limited: Bool = false,
                        servesHead: Bool = true, _ handler: @escaping @Sendable (APIRequest) async throws -> HTTPResponse) {
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
                return try await handler(APIRequest(http: request, principal: principal, now: now, services: services, isRead: limited,
                                                    refusals: trail))
            } catch {
                throw APIError.problem(for: error, logger: services.logger, requestID: request.requestID)
            }
        }
        let admission: RouteAdmission = { request throws(HTTPError) in _ = try Self.authenticate(request, services: services) }
        router.add(method, pattern, bodyBytesMax: limit, servesHead: servesHead, admission: admission,
                   .async { request in try await RefusalAudit.run(request, pattern: pattern, services: services, guarded) })
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


extension Substring {
    func caseInsensitiveCompare(_ other: String) -> Bool {
        utf8.count == other.utf8.count && zip(utf8, other.utf8).allSatisfy { a, b in (a | 0x20) == (b | 0x20) }
    }
}

extension JSONWriter {
    mutating func member(_ name: StaticString, _ timestamp: Timestamp?) {
        member(name, timestamp?.rfc3339)
    }
}
