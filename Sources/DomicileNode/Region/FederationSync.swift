import DomicileFederation
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// The federation's shell (docs/FEDERATION.md, "The shell"): the region's
/// anti-entropy machine (`FederationNode`), driven by the node that leads
/// the region (a region's only node, without a log), ticking every
/// `tickMilliseconds`. What the machine takes is written through the region
/// log, in one transaction with what applying it does (a release joins
/// `aggregate_releases`), before any message leaves; so every node of the
/// region holds the region's federation state, and any of them answers a
/// peer region's digest from its own copy (`answer`).
///
/// Messages travel as `POST /internal/v1/federation` to a live node of the
/// destination region (from the federation's gossip pool), signed by the
/// sending node (`FederationFrame`, checked against the regions' rosters,
/// `FederationTrust`) and sealed both ways under the federation key: a
/// request carries one envelope, the answer the envelopes the answering
/// region's machine has for the asker. A digest is
/// answered by any node from its own copy; entries pushed by a peer
/// (`deltas`) go to the machine of the region's leader — relayed to it over
/// the region channel by a follower — and are persisted by its next round,
/// so only the leader ever writes the region's federation state.
///
/// Rounds run every `tickMilliseconds`, and at once (`wake`) when there is
/// news: a release or an erasure request made here, entries pushed by a
/// peer, or a round that took or published something. A round that
/// publishes records also sends a digest to every peer region, so records
/// travel in a few round trips instead of waiting for the periodic digest.
final class FederationSync: Sendable {
    static let path = "/internal/v1/federation"
    static let tickMilliseconds: Int64 = 500
    /// The `Server-Timing` metric of an answer: the time the answering node spent on it.
    static let timingMetric = "federation"
    /// A peer region's answer, within which it is given up for this round.
    static let requestTimeoutMilliseconds: Int64 = 5_000
    /// Live nodes of a region tried for one message.
    static let attemptsPerMessage = 2
    /// This region's releases handed to the machine per round.
    static let publishBatch = 64
    /// This region's noised exports and retractions handed to the machine per round.
    static let embeddingBatch = 512
    static let messageAssociatedData = Array("domicile/federation/message/v1".utf8)
    static let answerAssociatedData = Array("domicile/federation/answer/v1".utf8)

    private let services: NodeServices
    private let schedule = PeriodicTask()
    /// The machine while this node drives the region's federation, with the
    /// term of the region log it was restored in (rebuilt from node.sqlite
    /// when leadership comes back, or after a failed round).
    private let driven = Locked<Driven?>(nil)
    /// When this node last exchanged a message with a node of each region
    /// (either way): what a pending erasure shows as a region's last contact.
    private let contacts = Locked<[RegionID: Timestamp]>([:])
    /// Per region that did not answer: consecutive failures, and the
    /// monotonic millisecond before which no message is sent to it.
    private let backOff = Locked<[RegionID: (failures: Int, until: Int64)]>([:])
    /// The longest a region that does not answer waits for the next try.
    static let backOffMaxMilliseconds: Int64 = 8_000

    /// Whether vectors may await an export decision: set by a vector write
    /// in an exporting collection, when this node starts driving, and every
    /// `exportScanRounds` rounds (a new budget period may admit versions
    /// refused in the last); the exporter's scan runs only then.
    private let exportsDue = Locked(true)
    private let roundsSinceExportScan = Locked(0)
    static let exportScanRounds = 120

    /// The machine digests are answered from, and the state it was restored at.
    private let answering = Locked<(stamp: [Int64], node: FederationNode)?>(nil)

    private struct Driven: Sendable {
        var node: FederationNode
        let term: UInt64
    }

    /// Who may speak for each region; nil when `federation.rosters` is not
    /// configured (senders are then authenticated by the federation key
    /// alone, and the log says so at start).
    let trust: FederationTrust?

    init(services: NodeServices) throws {
        self.services = services
        let paths = services.configuration.federationRosterPaths
        trust = paths.isEmpty ? nil : try FederationTrust(paths: paths)
    }

    /// Starts the rounds, in a federation of several regions whose peers
    /// this node can find (gossip); otherwise there is nothing to exchange.
    func start() {
        guard services.policy.regions.count > 1, services.gossip.value != nil else { return }
        if trust == nil {
            services.logger.warning("federation senders are authenticated by the federation key alone: federation.rosters is not configured")
        }
        services.federation.withLock { $0 = self }
        schedule.start(everyMilliseconds: Self.tickMilliseconds) { [self] in await round() }
    }

    /// Runs a round now: there is something to publish or to persist.
    func wake() { schedule.wake() }

    /// A vector of a collection with export settings was written: the next round exports it.
    func vectorsChanged() {
        exportsDue.withLock { $0 = true }
        wake()
    }

    /// When this node last exchanged a message with a node of `region`.
    func lastContact(with region: RegionID) -> Timestamp? { contacts.withLock { $0[region] } }

    fileprivate func contacted(_ region: RegionID) {
        let now = services.clock.now()
        contacts.withLock { $0[region] = now }
    }

    func stop() async { await schedule.stop() }

    // MARK: Driving (the region's leader)

    /// Whether this node drives the region's federation, and the log's term.
    private var leadership: (drives: Bool, term: UInt64) {
        guard let log = services.regionLog.value else { return (true, 0) }
        return (log.isServingLeader, log.status.term)
    }

    /// One tick: erases here for the intents that wait for this region,
    /// hands the machine this region's records not yet published (releases,
    /// intents, acks), ticks it, and carries out what it has ready.
    func round() async {
        let (drives, term) = leadership
        guard drives else {
            driven.withLock { $0 = nil }
            return
        }
        do {
            if driven.withLock({ $0?.term }) != term {
                let node = try Self.restore(services)
                driven.withLock { $0 = Driven(node: node, term: term) }
                exportsDue.withLock { $0 = true }
            }
            try await eraseForIntents()
            try await export()
            let records = try unpublished()
            // The noised embeddings handed to the machine: published, even if the machine retires one as it takes it.
            let embeddings = try driven.withLock { driven throws -> [NoisedEmbedding] in
                var embeddings: [NoisedEmbedding] = []
                for record in records {
                    guard let entry = try driven?.node.publish(record) else { continue }
                    if case .noisedEmbedding(let embedding) = record, entry.origin == services.region { embeddings.append(embedding) }
                }
                // News goes to every peer now, not at the next periodic digest.
                if !records.isEmpty { for peer in driven?.node.peers ?? [] { driven?.node.exchange(with: peer) } }
                driven?.node.tick()
                return embeddings
            }
            if try await carryOut(publishing: embeddings) { wake() }
        } catch {
            // What the machine holds may not be durable: rebuild it from node.sqlite next round.
            driven.withLock { $0 = nil }
            services.logger.warning("federation round failed", ["error": .string("\(error)")])
        }
    }

    /// The exporter's pass, when one is due; due again while a pass fills its batch.
    private func export() async throws {
        let scheduled = roundsSinceExportScan.withLock { rounds in
            rounds += 1
            return rounds >= Self.exportScanRounds
        }
        guard exportsDue.withLock({ due in defer { due = false }; return due }) || scheduled else { return }
        roundsSinceExportScan.withLock { $0 = 0 }
        do {
            if try await EmbeddingExports.exportPending(services: services).more { exportsDue.withLock { $0 = true } }
        } catch {
            exportsDue.withLock { $0 = true }
            throw error
        }
    }

    /// This region's records that node.sqlite holds and the federation has
    /// not carried yet: its releases, the intents of its erasure requests
    /// that expect other regions, its acks for other regions' requests, and
    /// its noised exports and retractions.
    /// (A record published just before a crash or a change of leader is
    /// found again by the next round, wherever it runs.)
    private func unpublished() throws -> [FederationRecord] {
        let region = services.region, policyVersion = Int64(services.policy.version), batch = Self.publishBatch
        return try services.store.read { database in
            var records = try AggregateData.unpublished(of: region, limit: batch, in: database)
                .map { FederationRecord.aggregate(try $0.federated(policyVersion: policyVersion)) }
            for request in try ErasureRecords.unpublishedIntents(of: region, limit: batch, in: database) {
                guard let signed = request.signed else { continue }
                records.append(.erasureIntent(try ErasureIntent(request: signed, erasedPids: try request.erasedPIDs.map { try PID(parsing: $0) })))
            }
            records += try ErasureRecords.unpublishedAcks(of: region, limit: batch, in: database).map { .erasureAck($0) }
            records += try EmbeddingExportRecords.unpublished(of: region, limit: Self.embeddingBatch, keys: services.keys, in: database)
                .map { .noisedEmbedding($0) }
            return records
        }
    }

    /// The erasure cascade's step here (DESIGN.md section 9): each intent of
    /// another region that expects this one and is not recorded here yet is
    /// erased here, through the region log; `ErasureConfirmations`, woken,
    /// signs the region's ack once every node has confirmed and wakes the
    /// round that publishes it. An intent whose signature does not check is
    /// left alone.
    private func eraseForIntents() async throws {
        // Without a log, each node of a region holds what it was sent and none may ack for the region.
        guard services.regionLog.value != nil else { return }
        let region = services.region
        let intents = driven.withLock { $0?.node.intentsAwaitingAck ?? [] }.filter { intent in
            let request = intent.request
            return intent.originRegion != region && request.isValid
                && trust?.trusts(request.publicKey, node: request.originNode, region: request.originRegion) != false
        }
        guard !intents.isEmpty else { return }
        for intent in intents {
            try await ErasureService.erase(forIntentOf: intent.request, pids: intent.erasedPids, services: services)
        }
        services.erasureConfirmations.value?.wake()
    }

    /// Persists and applies what the machine has ready, then sends its
    /// messages and steps the answers, until nothing is ready; the first
    /// write also marks `embeddings` published. Returns whether it took any
    /// entry (the next round may act on it).
    private func carryOut(publishing embeddings: [NoisedEmbedding]) async throws -> Bool {
        var took = false
        var published = embeddings
        while let ready = driven.withLock({ driven -> FederationReady? in
            guard driven?.node.hasReady == true else { return nil }
            return driven?.node.ready()
        }) {
            if !ready.persist.isEmpty || !ready.apply.isEmpty || !ready.retire.isEmpty {
                let services = self.services, trust = self.trust
                took = took || ready.persist.contains { $0.origin != services.region }
                let marking = published
                try await services.store.write { database in
                    try FederationRecords.insert(ready.persist, keys: services.keys, in: database)
                    try FederationRecords.retire(ready.retire, in: database)
                    try EmbeddingExportRecords.markPublished(marking, in: database)
                    try FederationRecords.apply(ready.apply, here: services.region, completer: services.configuration.node.rawValue,
                                                key: services.keys.signing, now: services.clock.now(), trusting: trust, in: database)
                }
                published = []
                // Replicas change once what they show is committed.
                services.vectors.applyFederated(ready.apply, here: services.region, now: services.clock.now())
            }
            for envelope in ready.messages {
                let answers = await send(envelope)
                driven.withLock { driven in for answer in answers { driven?.node.step(answer) } }
            }
        }
        return took
    }

    /// This region's machine as node.sqlite holds it.
    static func restore(_ services: NodeServices) throws -> FederationNode {
        let entries = try services.store.read { try FederationRecords.entries(keys: services.keys, in: $0) }
        var draws = services.random.generator()
        return try FederationNode(region: services.region, peers: Array(services.policy.regions.keys), settings: FederationSettings(),
                                  transfer: .policy(services.policy), randomSeed: UInt64.random(in: 0...UInt64.max, using: &draws),
                                  restoring: entries)
    }

    /// Sends `envelope` to a live node of its region; returns the answers
    /// addressed to this region (none if no node answered). A region that
    /// did not answer is left alone for a while that doubles with each
    /// failure, from one round up to `backOffMaxMilliseconds`.
    private func send(_ envelope: FederationEnvelope) async -> [FederationEnvelope] {
        let region = envelope.to
        guard backOff.withLock({ $0[region].map { monotonicMilliseconds() >= $0.until } ?? true }) else { return [] }
        let answers = await attempt(envelope)
        backOff.withLock { backOff in
            guard answers == nil else { return backOff[region] = nil }
            let failures = (backOff[region]?.failures ?? 0) + 1
            let delay = min(Self.backOffMaxMilliseconds, Self.tickMilliseconds << min(failures - 1, 16))
            backOff[region] = (failures, monotonicMilliseconds() + delay)
        }
        return answers ?? []
    }

    /// One message to a live node of its region (two tried): the answers, or nil if none answered.
    private func attempt(_ envelope: FederationEnvelope) async -> [FederationEnvelope]? {
        guard let encoded = try? FederationCodec.encode(envelope) else { return nil }
        let framed = FederationFrame.frame(encoded, domain: FederationFrame.requestDomain, node: services.configuration.node,
                                           key: services.keys.signing)
        let sealed = services.keys.federationGossip.seal(framed, associatedData: Self.messageAssociatedData)
        for node in services.liveNodes(in: envelope.to).shuffled().prefix(Self.attemptsPerMessage) {
            do {
                var headers = HTTPHeaders()
                headers.set("Content-Type", "application/octet-stream")
                let started = DispatchTime.now().uptimeNanoseconds
                let response = try await services.peerClient.send("POST", Self.path, to: try SocketAddress(parsing: node.http),
                                                                  headers: headers, body: sealed,
                                                                  timeoutMilliseconds: Self.requestTimeoutMilliseconds)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
                services.metrics.increment("domicile_federation_bytes_total", labels: ["direction": "sent"], by: sealed.count)
                services.metrics.increment("domicile_federation_bytes_total", labels: ["direction": "received"], by: response.body.count)
                guard response.status == 200 else { throw HTTPError(status: response.status, code: "peer_refused", detail: "") }
                let plaintext = try services.keys.federationGossip.open(response.body, associatedData: Self.answerAssociatedData)
                guard let opened = FederationFrame.open(plaintext),
                      trust?.isSigned(opened.signedBytes(FederationFrame.answerDomain), signature: opened.signature, by: opened.node,
                                      of: envelope.to) != false else {
                    throw HTTPError(status: 403, code: "untrusted_sender", detail: "the answer is not signed by a node of \(envelope.to)")
                }
                let answers = try Self.decodeAnswers(opened.payload).filter { $0.from == envelope.to && $0.to == services.region }
                contacted(envelope.to)
                if let answering = ServerTiming.milliseconds(response.headers[ServerTiming.header], metric: Self.timingMetric) {
                    services.roundTrips.record(milliseconds: elapsed - min(answering, elapsed), to: envelope.to, by: .federation)
                }
                return answers
            } catch {
                services.logger.info("federation peer did not answer", ["region": .string(envelope.to.rawValue),
                                                                        "node": .string(node.name), "error": .string("\(error)")])
            }
        }
        return nil
    }

    // MARK: Answering (any node)

    /// `POST /internal/v1/federation`: a peer region's sealed envelope;
    /// answers with this region's sealed envelopes for it.
    static func add(to api: inout API) {
        let services = api.services
        api.peer("POST", path, bodyBytesMax: FederationCodec.messageBytesMax + 64) { request in
            let started = DispatchTime.now().uptimeNanoseconds
            var response = try await serve(request, services: services)
            // What the sender subtracts from its round trip (RoundTrips).
            response.headers.set(ServerTiming.header, ServerTiming.value(metric: timingMetric,
                                                                         milliseconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000))
            services.metrics.increment("domicile_federation_bytes_total", labels: ["direction": "received"], by: request.body.count)
            services.metrics.increment("domicile_federation_bytes_total", labels: ["direction": "sent"], by: response.body.count)
            return response
        }
    }

    /// A peer's message: a digest is answered from this node's copy;
    /// pushed entries go to the region's leader.
    private static func serve(_ request: HTTPRequest, services: NodeServices) async throws -> HTTPResponse {
        guard let sync = services.federation.value,
              let plaintext = try? services.keys.federationGossip.open(request.body, associatedData: messageAssociatedData) else {
            throw HTTPError(status: 403, code: "not_a_federation_node", detail: "the body is not sealed by a node of the federation")
        }
        guard let opened = FederationFrame.open(plaintext) else {
            throw HTTPError(status: 400, code: "invalid_federation_message", detail: "the message is not framed with its sender")
        }
        let envelope: FederationEnvelope
        do { envelope = try FederationCodec.decode(opened.payload) } catch {
            throw HTTPError(status: 400, code: "invalid_federation_message", detail: "the message does not decode: \(error)")
        }
        guard envelope.to == services.region, envelope.from != services.region, services.policy.regions[envelope.from] != nil else {
            throw HTTPError(status: 422, code: "invalid_federation_message", detail: "the message is not from a peer region to this one")
        }
        guard sync.trust?.isSigned(opened.signedBytes(FederationFrame.requestDomain), signature: opened.signature, by: opened.node,
                                   of: envelope.from) != false else {
            throw HTTPError(status: 403, code: "untrusted_sender", detail: "the message is not signed by a node of the region it names")
        }
        sync.contacted(envelope.from)
        if case .deltas = envelope.message {
            // Pushed entries are the leader's to take; a follower relays them to it.
            if let relayed = try await relayToLeader(request.body, services: services) { return relayed }
            sync.take(envelope)
            return try sealedAnswer([], services: services)
        }
        return try sealedAnswer(try answer(envelope, services: services), services: services)
    }

    /// Answers framed with this node's signature and sealed.
    private static func sealedAnswer(_ answers: [FederationEnvelope], services: NodeServices) throws -> HTTPResponse {
        let framed = FederationFrame.frame(try encodeAnswers(answers), domain: FederationFrame.answerDomain,
                                           node: services.configuration.node, key: services.keys.signing)
        return HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"],
                            body: services.keys.federationGossip.seal(framed, associatedData: answerAssociatedData))
    }

    /// What this region's machine, as this node's copy holds it, answers to
    /// a digest: the entries the asker lacks, and this region's digest
    /// (from a machine kept while the entries do not change).
    static func answer(_ envelope: FederationEnvelope, services: NodeServices) throws -> [FederationEnvelope] {
        guard case .digest = envelope.message else { return [] }
        var node = try services.federation.value?.answeringMachine() ?? restore(services)
        node.step(envelope)
        return node.ready().messages.filter { $0.to == envelope.from }
    }

    /// The region's machine as node.sqlite holds it, restored again only
    /// when `federation_entries` changed: entries are only added and
    /// retired, never removed, so their count and the count retired name
    /// the state.
    private func answeringMachine() throws -> FederationNode {
        let stamp = try services.store.read { database in
            try database.fetchOne("SELECT count(*), coalesce(sum(retired), 0) FROM federation_entries") { [$0.int64(0), $0.int64(1)] } ?? []
        }
        if let cached = answering.withLock({ $0 }), cached.stamp == stamp { return cached.node }
        let node = try Self.restore(services)
        answering.withLock { $0 = (stamp, node) }
        return node
    }

    /// Entries a peer pushed, on the node that drives the machine: stepped
    /// into it and persisted by a round that runs now. Anywhere else they
    /// are dropped (the peer's next digest brings them again).
    func take(_ envelope: FederationEnvelope) {
        let taken = driven.withLock { driven -> Bool in
            guard driven != nil else { return false }
            driven?.node.step(envelope)
            return true
        }
        if taken { wake() }
    }

    /// On a follower of a region with a log, hands the sealed request to the
    /// region's leader over the region channel and returns its answer; nil
    /// on the leader, or without a log. (A fresh federated search is relayed
    /// too: the leader's copy is the one consent is current in.)
    static func relayToLeader(_ body: [UInt8], path: String = path, services: NodeServices) async throws -> HTTPResponse? {
        guard let log = services.regionLog.value, !log.isServingLeader else { return nil }
        guard let leader = log.status.leader, leader != services.configuration.node else {
            throw HTTPError(status: 503, code: "no_quorum", detail: "no leader of this region is known")
        }
        let call = ForwardedCall.Request(method: "POST", target: path, headers: [], body: body, requestID: "federation-relay")
        guard case .response(let status, _, let answer, _) = try await log.call(leader, call, timeoutMilliseconds: requestTimeoutMilliseconds) else {
            throw HTTPError(status: 503, code: "no_quorum", detail: "the region's leader did not answer")
        }
        // The leader's answer as it gave it, a refusal included.
        return HTTPResponse(status: status, headers: ["Content-Type": status == 200 ? "application/octet-stream" : "application/problem+json"],
                            body: answer)
    }

    // MARK: Answer framing

    /// At most as many envelopes as an answer could need (a deltas and a digest).
    static let answersMax = 16

    static func encodeAnswers(_ envelopes: [FederationEnvelope]) throws -> [UInt8] {
        var writer = BinaryWriter(capacity: 64)
        writer.write(UInt32(envelopes.count))
        for envelope in envelopes {
            let encoded = try FederationCodec.encode(envelope)
            writer.write(UInt32(encoded.count))
            writer.write(raw: encoded)
        }
        return writer.bytes
    }

    static func decodeAnswers(_ bytes: [UInt8]) throws -> [FederationEnvelope] {
        var reader = BinaryReader(bytes, what: "federation answer")
        let count = try reader.readUInt32()
        guard count <= answersMax else { throw ModelError.invalidEncoding(what: "federation answer") }
        var envelopes: [FederationEnvelope] = []
        for _ in 0..<count {
            let length = Int(try reader.readUInt32())
            guard length <= FederationCodec.messageBytesMax else { throw ModelError.invalidEncoding(what: "federation answer") }
            envelopes.append(try FederationCodec.decode(try reader.readBytes(length)))
        }
        guard reader.isAtEnd else { throw ModelError.invalidEncoding(what: "federation answer") }
        return envelopes
    }
}
