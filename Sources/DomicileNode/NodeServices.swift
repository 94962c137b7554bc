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
    /// Whether a subject's data may serve a purpose now: every path asks it.
    let consentGate: ConsentGate
    let rateLimiter: RateLimiter
    let accessMonitor: AccessMonitor
    /// Threads for long reads (an aggregate's scan over every subject), so
    /// they never hold one of the cooperative threads the server runs on.
    let scans = BlockingPool(name: "scans", threadsMax: 2)
    let lifecycle = Locked(Lifecycle.starting)
    /// The vector indexes, loaded at start.
    let vectors = VectorCollections()
    /// The search widths of collections with a `target_recall`.
    let calibrations = Calibrations()
    /// Membership, once started (nil when the node runs without gossip).
    let gossip = Locked<GossipService?>(nil)
    /// The region log, once started (nil when the node runs without one).
    let regionLog = Locked<RegionLog?>(nil)
    /// The federation's shell, once started (nil in a federation of one region).
    let federation = Locked<FederationSync?>(nil)
    /// The leader's retries of erasure confirmations, once started.
    let erasureConfirmations = Locked<ErasureConfirmations?>(nil)
    /// Calls to other nodes (`RegionErasure`, `FederationSync`), shaped by `links`.
    let peerClient: HTTPClient
    /// Delays and loss to the peers of other regions (config `wan`); nil: none.
    let links: LinkShaper?
    /// Round trips measured to each peer region (`GET /v1/cluster`).
    let roundTrips = RoundTrips()

    enum Lifecycle: Sendable, Equatable {
        case starting
        case serving
        case draining
    }

    var region: RegionID { configuration.region }
    /// The boot id as logged and reported: lowercase hexadecimal.
    var bootIDText: String { String(bootID, radix: 16) }

    init(configuration: NodeConfiguration, store: Store, keys: RegionKeys, policy: ResidencyPolicy, principals: Principals,
         clock: any Clock, ids: any IDGenerator, random: any RandomSource, metrics: Metrics, logger: Logger, bootID: UInt64,
         peerTLS: TLSContext? = nil) {
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
        links = configuration.wan?.shaper(from: configuration.region)
        var clientSettings = HTTPClient.Settings()
        clientSettings.links = links
        // Calls to peers verify their certificates against the cluster CA (`tls.ca_file`).
        clientSettings.tls = peerTLS
        peerClient = HTTPClient(settings: clientSettings)
        regionPurposes = Set(policy.purposes.keys.filter { policy.basis(for: $0, in: configuration.region) != nil })
        gpcPurposes = policy.gpcPurposes
        consentGate = ConsentGate(policy: policy, region: configuration.region)
        rateLimiter = RateLimiter(settings: .init(ratePerSecond: configuration.limits.readRatePerSecond,
                                                  burst: configuration.limits.readBurst))
        accessMonitor = AccessMonitor(distinctSubjectsPerMinute: configuration.limits.distinctSubjectsPerMinute)
    }

    /// Live nodes of `region`, as far as this node's membership knows.
    func liveNodes(in region: RegionID) -> [NodeAddress] { gossip.value?.liveNodes(in: region) ?? [] }

    /// A pid from a path, owned by this region: else 400 or 421.
    func homePID(_ text: String) throws(DomainError) -> PID {
        let pid = try knownPID(text)
        guard pid.region == region else { throw DomainError.misdirected(home: pid.region, nodes: liveNodes(in: pid.region)) }
        return pid
    }

    /// A pid from a request, of a region of the policy: else 400 `invalid_pid`
    /// (no node anywhere could hold it, so it is malformed, not misdirected).
    func knownPID(_ text: String) throws(DomainError) -> PID {
        let pid: PID
        do { pid = try PID(parsing: text) } catch {
            if case .invalidPID(let reason) = error { throw DomainError.invalidPID(reason) }
            throw DomainError.invalidPID("unparseable")
        }
        guard policy.isKnown(pid.region) else { throw DomainError.invalidPID("its region is not in the residency policy") }
        return pid
    }

    /// Reads a subject's data in one snapshot. An unknown subject is audited
    /// as `not_found` for `action` and answered 404 `unknown_subject`.
    func readSubject<T: Sendable>(_ pid: PID, action: String, call: CallContext,
                                  _ read: (Database) throws -> T) async throws -> T {
        let found = try store.snapshot { database -> T? in
            guard try SubjectRecords.isLive(pid, keys: keys, in: database) else { return nil }
            return try read(database)
        }
        guard let found else {
            try await audit(call.event(action, pid: pid.rawValue, outcome: "not_found"))
            call.refusals.markAudited()
            throw DomainError.unknownSubject()
        }
        return found
    }

    /// A purpose from a request, allowed in this region by the policy; else
    /// 422 `unknown_purpose` naming `field`.
    func regionPurpose(_ text: String, field: String) throws(DomainError) -> Purpose {
        guard let purpose = try? Purpose(text), regionPurposes.contains(purpose) else { throw DomainError.unknownPurpose(field) }
        return purpose
    }

    /// A write about one subject. When `body` refuses it (a `DomainError`,
    /// which rolls its transaction back), the refusal is audited for
    /// `action` (outcome `refused:<code>`) before it is rethrown. Whatever
    /// the failure, the subject's entries in the vector indexes are put
    /// back as committed.
    @discardableResult
    func writeAudited<T: Sendable>(_ call: CallContext, action: String, pid: PID, purpose: String? = nil,
                                   _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await store.write(body)
        } catch let error as DomainError {
            try await resynchronizeVectors(of: [pid])
            let event = call.event(action, pid: pid.rawValue, purpose: purpose, outcome: Refusals.outcome(error.code))
            if await auditRefusal([event], code: error.code, requestID: call.requestID) { call.refusals.markAudited() }
            throw error
        } catch {
            try? await resynchronizeVectors(of: [pid])
            throw error
        }
    }

    /// After a committed write that may have retracted noised exports (a
    /// revoke, a vector deleted or purged): the federation's next round
    /// publishes the retractions now rather than at its next tick.
    func exportsRetracted() { federation.value?.wake() }

    /// Puts the subjects' noised copies in the exports indexes as committed
    /// (after an export pass: never before its charges are durable).
    func resynchronizeExports(of pids: [PID]) async throws {
        guard !pids.isEmpty else { return }
        try await store.write { database in
            for pid in pids { try self.vectors.resynchronizeExports(of: pid, services: self, in: database) }
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
