import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import DomicileVectors
import Foundation

/// A running region node: storage, keys, policy and the HTTP API.
public final class Node: Sendable {
    public struct StartupError: Error, CustomStringConvertible {
        public let description: String
    }

    let services: NodeServices
    private let server: HTTPServer
    private let sweeper: RetentionSweeper
    private let erasureConfirmations: ErasureConfirmations
    private let federation: FederationSync
    private let graphSaver: GraphSnapshotSaver
    private let keyringLock: KeyringLock
    public let httpAddress: SocketAddress
    /// Every route served, as (method, pattern): docs/openapi.yaml must list the same.
    public let routes: [Route]

    public struct Route: Hashable, Sendable {
        public let method: String
        public let pattern: String
    }

    public var logger: Logger { services.logger }

    private init(services: NodeServices, server: HTTPServer, sweeper: RetentionSweeper, erasureConfirmations: ErasureConfirmations,
                 federation: FederationSync, graphSaver: GraphSnapshotSaver, keyringLock: KeyringLock, httpAddress: SocketAddress,
                 routes: [Route]) {
        self.graphSaver = graphSaver
        self.services = services
        self.keyringLock = keyringLock
        self.server = server
        self.sweeper = sweeper
        self.erasureConfirmations = erasureConfirmations
        self.federation = federation
        self.httpAddress = httpAddress
        self.routes = routes
    }

    /// Opens everything the node needs — failing with a message that names
    /// what is wrong — then starts serving.
    /// `clock`, `ids` and `random` are where every time, id and random draw
    /// comes from: a test passes a manual clock, a `SeededIDGenerator` and a
    /// `SeededRandomSource` to replay a run.
    public static func start(_ configuration: NodeConfiguration, clock: any Clock = SystemClock(),
                             ids: any IDGenerator = SecureIDGenerator(), random: any RandomSource = SecureRandomSource(),
                             logger: Logger? = nil) async throws -> Node {
        let logger = logger ?? Logger(clock: clock)
        do {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw StartupError(description: "data directory \(configuration.dataDirectory): cannot create it")
        }
        let master: MasterKey
        do { master = try configuration.masterKey.load() } catch {
            throw StartupError(description: "master key: \(error)")
        }
        let keyring: Keyring
        let keyringLock: KeyringLock
        do {
            // This node rewrites its keyring (bucket keys): it must be the file's only writer.
            keyringLock = try KeyringLock(keyringPath: configuration.keyringPath)
            keyring = try KeyringFile.load(path: configuration.keyringPath, master: master)
        } catch {
            throw StartupError(description: "keyring \(configuration.keyringPath): \(error)")
        }
        guard keyring.region == configuration.region, keyring.node == configuration.node else {
            throw StartupError(description: "keyring \(configuration.keyringPath) belongs to node \(keyring.node) in region "
                               + "\(keyring.region), not \(configuration.node) in \(configuration.region)")
        }
        let policy: ResidencyPolicy
        do {
            policy = try ResidencyPolicy(json: try FileIO.read(configuration.policyPath, byteCountMax: ResidencyPolicy.documentBytesMax))
        } catch {
            throw StartupError(description: "policy \(configuration.policyPath): \(error)")
        }
        guard policy.isKnown(configuration.region) else {
            throw StartupError(description: "policy \(configuration.policyPath) has no region \(configuration.region)")
        }
        let principals: Principals
        do { principals = try Principals.load(path: configuration.principalsPath) } catch {
            throw StartupError(description: "principals \(configuration.principalsPath): \(error)")
        }
        let serverTLS: TLSContext?, peerTLS: TLSContext?
        do {
            serverTLS = try configuration.tls.serverContext()
            peerTLS = try configuration.tls.peerClientContext()
        } catch {
            throw StartupError(description: "tls: \(error.reason)")
        }
        // With a region log, every batch's changeset goes through the log
        // before it commits (`RegionLog.replicate`); the log starts once
        // the services it applies into exist.
        let regionLogSlot = Locked<RegionLog?>(nil)
        var writerSettings = Writer.Settings()
        var roster: RegionRoster?
        if let logConfiguration = configuration.regionLog {
            do { roster = try RegionRoster.load(path: logConfiguration.rosterPath) } catch {
                throw StartupError(description: "region_log.roster \(logConfiguration.rosterPath): \(error)")
            }
            writerSettings.beforeCommit = { changeset, database in
                guard let log = regionLogSlot.value else {
                    guard changeset.isEmpty else { throw NoQuorum(reason: "the region log is not running yet") }
                    return
                }
                try log.replicate(changeset, in: database)
            }
            writerSettings.afterCommit = { regionLogSlot.value?.batchFinished(committed: $0) }
        }
        let store: Store
        do {
            store = try Store(path: configuration.databasePath, migrator: NodeSchema.migrator, now: clock.now().milliseconds,
                              settings: writerSettings)
        } catch {
            throw StartupError(description: "database \(configuration.databasePath): \(error)")
        }
        let services = NodeServices(configuration: configuration, store: store, keys: try RegionKeys(keyring: keyring, clock: { clock.now().milliseconds / 1_000 }, random: random) {
                                        try KeyringFile.save($0, path: configuration.keyringPath, master: master, replacing: true)
                                    }, policy: policy,
                                    principals: principals, clock: clock, ids: ids, random: random, metrics: Metrics(), logger: logger,
                                    bootID: { var draws = random.generator(); return UInt64.random(in: 1...UInt64.max, using: &draws) }(),
                                    peerTLS: peerTLS)
        do {
            try await services.keys.subjects.recover(store, replicated: roster != nil)
        } catch {
            store.close()
            throw StartupError(description: "keyring \(configuration.keyringPath): cannot finish re-wrapping subject keys: \(error)")
        }
        do {
            try store.read { try services.vectors.load(services: services, from: $0) }
        } catch {
            store.close()
            throw StartupError(description: "database \(configuration.databasePath): cannot load the vector collections: \(error)")
        }
        var regionLog: RegionLog?
        if let logConfiguration = configuration.regionLog, let roster {
            do {
                regionLog = try RegionLog.open(configuration: logConfiguration, roster: roster, services: services, random: random)
            } catch {
                store.close()
                throw StartupError(description: "region_log: \(error)")
            }
            // Before the server takes a call: none is served from this node's
            // own state while the log is not running yet (it answers no_quorum).
            regionLogSlot.withLock { $0 = regionLog }
            services.regionLog.withLock { $0 = regionLog }
        }
        let boundAddress = Locked<String>(configuration.http.address.description)
        var api = API(services: services)
        SystemRoutes.add(to: &api) { boundAddress.value }
        SubjectRoutes.add(to: &api)
        ConsentRoutes.add(to: &api)
        FeatureRoutes.add(to: &api)
        ContractRoutes.add(to: &api)
        VectorRoutes.add(to: &api)
        AggregateRoutes.add(to: &api)
        ErasureRoutes.add(to: &api)
        RegionErasure.add(to: &api)
        FederationSync.add(to: &api)
        RemoteSearch.add(to: &api)
        ReidentificationRoutes.add(to: &api)
        AuditRoutes.add(to: &api)
        RegionLogRoutes.add(to: &api)

        let accessLog = configuration.accessLog
        // A client's request id is logged and audited: one that looks like an
        // identifier (a phone number, an e-mail address…) is replaced.
        let server = try HTTPServer(settings: configuration.http.settings, router: api.router,
                                    requestIDFilter: { PIIClassifier.classify($0) == nil }, observer: { exchange in
            services.metrics.record(exchange)
            if accessLog {
                logger.info("http", ["method": .string(exchange.method), "route": .string(exchange.route),
                                     "status": .int(Int64(exchange.status)),
                                     "ms": .double(Double(exchange.durationMicroseconds) / 1_000),
                                     "request_id": .string(exchange.requestID)])
            }
        }, tls: serverTLS)
        let bound: SocketAddress
        do { bound = try server.start(address: configuration.http.address) } catch {
            store.close()
            throw StartupError(description: "http.address \(configuration.http.address): \(error)")
        }
        boundAddress.withLock { $0 = bound.description }
        if let links = services.links {
            logger.warning("wan emulation: delays (and loss) are added to what this node sends to other regions",
                           ["peer_addresses": .int(Int64(links.peerCount))])
        }
        if let gossipAddress = configuration.gossip.address {
            do {
                var settings = try GossipService.Settings(configuration.gossip)
                settings.links = services.links
                let gossip = try GossipService(bind: gossipAddress, advertise: configuration.gossip.advertise, name: configuration.node,
                                               region: configuration.region, bootID: services.bootID, httpAddress: bound.description, seeds: configuration.gossip.seeds,
                                               keyring: (services.keys.regionGossip, services.keys.federationGossip),
                                               settings: settings, logger: logger, roundTrips: services.roundTrips)
                services.gossip.withLock { $0 = gossip }
                gossip.start()
                logger.info("gossip", ["address": .string(gossip.identity.gossipAddress), "seeds": .int(Int64(configuration.gossip.seeds.count)),
                                       "profile": .string(configuration.gossip.profile.rawValue)])
            } catch {
                await server.shutdown(graceMilliseconds: 0)
                store.close()
                throw StartupError(description: "gossip.address \(gossipAddress): \(error)")
            }
        }
        if let regionLog {
            let router = api.router
            do {
                try regionLog.start(signing: services.keys.signing, regionKeys: services.keys.regionGossip, region: configuration.region,
                                    random: random) { call in await RegionRouting.serve(call, router: router, log: regionLog) }
            } catch {
                await server.shutdown(graceMilliseconds: 0)
                store.close()
                throw StartupError(description: "region_log.address \(configuration.regionLog!.address): \(error)")
            }
            regionLog.recordRecovery(services: services)
        }
        let sweeper = RetentionSweeper(services: services)
        sweeper.start()
        let erasureConfirmations = ErasureConfirmations(services: services)
        erasureConfirmations.start()
        let federation: FederationSync
        do { federation = try FederationSync(services: services) } catch {
            await server.shutdown(graceMilliseconds: 0)
            store.close()
            throw StartupError(description: "federation.rosters: \(error)")
        }
        federation.start()
        let graphSaver = GraphSnapshotSaver(services: services)
        graphSaver.start()
        services.lifecycle.withLock { $0 = .serving }
        logger.info("listening", ["node": .string(configuration.node.rawValue), "region": .string(configuration.region.rawValue),
                                  "http": .string(bound.description), "transport": .string(configuration.tls.transport),
                                  "boot_id": .string(services.bootIDText),
                                  "policy_version": .int(Int64(policy.version)), "vector_kernels": .string(VectorKernels.Level.current.description)])
        if case .plaintext = configuration.tls {
            logger.warning("plaintext: the HTTP API and this node's calls to its peers are not encrypted (tls.plaintext in the config)")
        }
        return Node(services: services, server: server, sweeper: sweeper, erasureConfirmations: erasureConfirmations,
                    federation: federation, graphSaver: graphSaver, keyringLock: keyringLock, httpAddress: bound,
                    routes: api.router.routes.map { Route(method: $0.method, pattern: $0.pattern) })
    }

    /// Reads the TLS files again (SIGHUP): the certificate and key, and the
    /// CA trusted in peers' certificates. Connections accepted from now on
    /// present the new certificate, open ones keep theirs; the node's calls
    /// to its peers verify them against the new CA (and present the new
    /// certificate) from the next connection on. A file that cannot be
    /// loaded leaves everything as it was; false then.
    @discardableResult
    public func reloadTLS() -> Bool {
        let configuration = services.configuration
        guard case .files = configuration.tls else { return false }
        do {
            guard let context = try configuration.tls.serverContext(),
                  let peerContext = try configuration.tls.peerClientContext() else { return false }
            server.reloadTLS(context)
            services.peerClient.reloadTLS(peerContext)
            logger.info("tls reloaded")
            return true
        } catch {
            logger.warning("tls reload failed: the current certificate stays in force", ["reason": .string(error.reason)])
            return false
        }
    }

    /// Stops serving (requests in flight finish), closes storage, and
    /// flushes the log (bounded) so the last lines outlive the process.
    public func shutdown(graceMilliseconds: Int64 = 10_000) async {
        services.lifecycle.withLock { $0 = .draining }
        logger.info("stopping")
        // Leave first: the other members learn of it now instead of suspecting us.
        services.gossip.value?.stop()
        await server.shutdown(graceMilliseconds: graceMilliseconds)
        await sweeper.stop()
        await erasureConfirmations.stop()
        await federation.stop()
        // The graphs as they are now, so the next start restores instead of rebuilding.
        await graphSaver.stop()
        await graphSaver.save(force: true)
        // Waiting batches fail (not acknowledged) before the writer drains.
        services.regionLog.value?.stop()
        services.store.close()
        keyringLock.release()
        logger.info("stopped")
        logger.flush()
    }
}
