import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicilePrivacy

/// One seeded run of a federation of regions under a nemesis: a network
/// that drops, delays, reorders and duplicates messages and partitions the
/// regions; regions that crash — between steps, and inside the shell's
/// handling of a `FederationReady` (before its transaction is synced, which
/// then survives whole or is lost whole, or before it sends) — and restart
/// from their durable store alone. Each region is one `FederationNode` (its
/// region log makes the region one store); clients publish releases and
/// start erasures in any region, and each region exports (and retracts)
/// noised embeddings of a few subjects of its own, some of which intents
/// erase; an intent that expects a region makes it erase (in the
/// transaction that keeps the intent) and then publish its signed ack. The
/// residency policy of a run denies aggregates between some ordered pairs
/// of regions, drawn from the seed.
///
/// Checked after every step: no region holds a record denied to it; every
/// held entry is the one its origin published at that position; no ack
/// exists before its region's erasure is durable; a certificate completes
/// only when every expected region acked and erased; no region's store
/// keeps the body of a noised embedding a newer generation superseded, nor
/// of a pid an intent it holds erases; every `deltas` message is within the
/// exchange's bounds; every message survives the codec unchanged. At the
/// end the nemesis stops, everything heals and restarts, and the run waits
/// for convergence: every region holds every release it may hold and the
/// newest copy of every subject not erased, every expected region erased
/// every intent, every certificate is complete at its origin, and the
/// vectors agree. Everything
/// is drawn from `seed`, so a failing run replays exactly.
public final class FederationSimulation {
    public struct Plan: Sendable {
        public var regions = 4
        public var settings = FederationSettings.testing
        /// Time units (one tick of each live region) under the nemesis, then to heal.
        public var chaosTime = 300
        public var healTimeMax = 3_000
        public var dropProbability = 0.1
        public var duplicateProbability = 0.03
        public var crashProbability = 0.01
        /// Per `FederationReady`: a crash before its transaction is synced, or before it sends.
        public var shellCrashProbability = 0.01
        public var restartProbability = 0.08
        public var partitionProbability = 0.02
        public var healProbability = 0.05
        public var publishProbability = 0.3
        public var erasureProbability = 0.03
        /// Per time unit: a region exports (or, one time in four, retracts) a noised copy of one of its subjects.
        public var embeddingProbability = 0.25
        /// Subjects per region whose noised copies are exported.
        public var subjectsPerRegion = 5
        /// Each ordered pair of regions: aggregates denied from the first to the second.
        public var deniedPairProbability = 0.25
        /// A release or intent near the record bound, so exchanges stop at the byte bound.
        public var largeRecordProbability = 0.15

        public init() {}
    }

    public struct Outcome: Sendable {
        public var seed: UInt64
        public var regions: Int
        /// Time units run (nemesis and healing).
        public var steps = 0
        public var releases = 0
        public var erasures = 0
        public var embeddings = 0
        /// Bodies the regions' stores dropped (superseded or erased copies).
        public var retirements = 0
        public var certificatesCompleted = 0
        public var crashes = 0
        /// Of which inside the shell's handling of a `FederationReady`.
        public var shellCrashes = 0
        public var restarts = 0
        public var partitions = 0
        public var messagesSent = 0
        public var messagesDropped = 0
        /// `deltas` messages that stopped at a bound (`more`), of which at the
        /// byte bound (fewer entries than the entry bound), and the largest one's bytes.
        public var boundedExchanges = 0
        public var byteBoundedExchanges = 0
        public var largestExchangeBytes = 0
        public var violation: FederationViolation?
    }

    /// A region's durable store: its entries and the erasures it applied,
    /// each `FederationReady` one transaction of both (written whole or lost
    /// whole by a crash before its sync).
    struct Store {
        var entries: [FederationEntry] = []
        var erased: Set<String> = []
        /// What the noised embeddings' check reads, kept as entries come and go:
        /// the generations whose bodies are kept, per key and per pid, the
        /// newest generation ever kept, and the pids held intents erase.
        var bodies: [NoisedEmbedding.Key: Set<UInt64>] = [:]
        var keys: [PID: Set<NoisedEmbedding.Key>] = [:]
        var newest: [NoisedEmbedding.Key: UInt64] = [:]
        var erasedPids: Set<PID> = []

        mutating func kept(_ record: FederationRecord?) {
            switch record {
            case .noisedEmbedding(let embedding)?:
                bodies[embedding.key, default: []].insert(embedding.generation)
                keys[embedding.pid, default: []].insert(embedding.key)
                newest[embedding.key] = max(newest[embedding.key] ?? 0, embedding.generation)
            case .erasureIntent(let intent)?:
                erasedPids.formUnion(intent.erasedPids)
            default:
                break
            }
        }

        mutating func dropped(_ record: FederationRecord?) {
            guard case .noisedEmbedding(let embedding)? = record else { return }
            bodies[embedding.key]?.remove(embedding.generation)
        }
    }

    final class Region {
        let id: RegionID
        let key: Ed25519PrivateKey
        var store = Store()
        var node: FederationNode?

        init(id: RegionID, key: Ed25519PrivateKey) {
            self.id = id
            self.key = key
        }
    }

    struct Position: Hashable {
        let origin: RegionID
        let seq: UInt64
    }

    public let seed: UInt64
    public let plan: Plan
    private var random: SeededRandom
    private let transfer: FederationTransfer
    private let denied: Set<[RegionID]>
    private var regions: [Region] = []
    private var now: UInt64 = 0
    private var network: [(at: UInt64, to: RegionID, bytes: [UInt8], sent: FederationEnvelope)] = []
    private var sides: [RegionID: Int]?
    private var chaos = true
    /// What each origin durably published at each position.
    private var published: [Position: FederationRecord] = [:]
    private var completed: Set<String> = []
    private var outcome: Outcome
    /// Each region's subjects whose copies it exports, and the last generation given to each.
    private var subjects: [RegionID: [PID]] = [:]
    private var generations: [PID: UInt64] = [:]
    /// The noised embeddings clients handed to their regions, by the position each took.
    private var offered: [Position: FederationRecord] = [:]
    private static let collection = try! Name("taste", what: "collection")

    public init(seed: UInt64, plan: Plan) throws {
        self.seed = seed
        self.plan = plan
        random = SeededRandom(seed: seed)
        outcome = Outcome(seed: seed, regions: plan.regions)
        let ids = try (0..<plan.regions).map { try RegionID("r\($0)") }
        var denied = Set<[RegionID]>()
        for origin in ids {
            for destination in ids where destination != origin && Double.random(in: 0..<1, using: &random) < plan.deniedPairProbability {
                denied.insert([origin, destination])
            }
        }
        self.denied = denied
        transfer = FederationTransfer { [denied] kind, origin, destination in
            kind != .aggregate || !denied.contains([origin, destination])
        }
        for id in ids {
            let seedBytes = (0..<Ed25519PrivateKey.seedByteCount).map { _ in UInt8.random(in: 0...255, using: &random) }
            let region = Region(id: id, key: try Ed25519PrivateKey(seed: seedBytes))
            regions.append(region)
            region.node = try makeNode(region)
            subjects[id] = (0..<plan.subjectsPerRegion).map { _ in
                PID(keyVersion: 1, region: id, digest: (0..<PID.digestByteCount).map { _ in UInt8.random(in: 0...255, using: &random) })
            }
        }
    }

    /// Runs the nemesis, then heals and waits for convergence. Stops at the
    /// first broken property.
    public func run() -> Outcome {
        do {
            try runChecked()
        } catch let violation as FederationViolation {
            outcome.violation = violation
        } catch {
            outcome.violation = FederationViolation(.codec, "\(error)")
        }
        return outcome
    }

    private func runChecked() throws {
        for _ in 0..<plan.chaosTime { try step() }
        chaos = false
        sides = nil
        for region in regions where region.node == nil { try restart(region) }
        for time in 0..<plan.healTimeMax {
            try step()
            if time % 10 == 9, try converged() == nil { return }
        }
        throw FederationViolation(.convergence, try converged() ?? "")
    }

    // MARK: One time unit

    private func step() throws {
        now += 1
        outcome.steps += 1
        if chaos { try nemesis() }
        try clients()
        for region in regions where region.node != nil {
            region.node!.tick()
            try handle(region)
        }
        try flowMessages()
    }

    private func nemesis() throws {
        for region in regions where region.node != nil && chance(plan.crashProbability) { crash(region) }
        for region in regions where region.node == nil && chance(plan.restartProbability) { try restart(region) }
        if sides == nil, chance(plan.partitionProbability) {
            sides = Dictionary(uniqueKeysWithValues: regions.map { ($0.id, Int.random(in: 0...1, using: &random)) })
            outcome.partitions += 1
        } else if sides != nil, chance(plan.healProbability) {
            sides = nil
        }
    }

    private func clients() throws {
        guard chaos else { return }
        if chance(plan.publishProbability), let region = liveRegions.randomElement(using: &random) {
            try region.node!.publish(.aggregate(release(in: region.id)))
            outcome.releases += 1
            try handle(region)
        }
        // The region may have crashed while handling the release: choose again.
        if chance(plan.erasureProbability), let region = liveRegions.randomElement(using: &random) {
            try region.node!.publish(.erasureIntent(intent(from: region)))
            outcome.erasures += 1
            try handle(region)
        }
        if chance(plan.embeddingProbability), let region = liveRegions.randomElement(using: &random) {
            let record = FederationRecord.noisedEmbedding(try embedding(in: region.id))
            let entry = try region.node!.publish(record)
            offered[Position(origin: entry.origin, seq: entry.seq)] = record
            outcome.embeddings += 1
            try handle(region)
        }
    }

    private var liveRegions: [Region] { regions.filter { $0.node != nil } }

    // MARK: The shell of one region

    /// What the node's shell does with each `FederationReady`: check what it
    /// would keep, keep it and apply it in one transaction (an intent that
    /// expects this region erases here), send, then ack every intent erased
    /// and not yet acked.
    private func handle(_ region: Region) throws {
        while region.node?.hasReady == true {
            let ready = region.node!.ready()
            try check(ready, in: region)
            var erased: [String] = []
            for entry in ready.apply {
                if case .erasureIntent(let intent) = entry.body.record, intent.expectedRegions.contains(region.id) {
                    erased.append(intent.erasureID)
                }
            }
            if chaos, chance(plan.shellCrashProbability) {
                // Before the sync: the transaction reaches the disk whole, or not at all.
                if chance(0.5) { try commit(ready, erased: erased, in: region) }
                outcome.shellCrashes += 1
                crash(region)
                return
            }
            try commit(ready, erased: erased, in: region)
            if chaos, chance(plan.shellCrashProbability) {
                outcome.shellCrashes += 1
                crash(region)
                return
            }
            for envelope in ready.messages { try send(envelope) }
            try acknowledge(region)
            try checkCertificates(of: region, after: ready)
        }
    }

    /// One transaction of the region's store: the entries, the bodies
    /// retired, and the erasures.
    private func commit(_ ready: FederationReady, erased: [String], in region: Region) throws {
        let entries = ready.persist
        for entry in entries where entry.origin == region.id {
            let position = Position(origin: entry.origin, seq: entry.seq)
            // A copy retired as it was published (its pid erased) still took its position.
            guard let record = entry.body.record ?? (entry.body == .retired(.noisedEmbedding) ? offered[position] : nil) else { continue }
            if let earlier = published[position], earlier != record {
                throw FederationViolation(.onePositionOneRecord, "\(region.id) published two records at \(entry.origin)#\(entry.seq)")
            }
            published[position] = record
        }
        region.store.entries += entries
        for entry in entries { region.store.kept(entry.body.record) }
        outcome.retirements += ready.retire.count
        for retired in ready.retire {
            guard let index = region.store.entries.lastIndex(where: { $0.origin == retired.origin && $0.seq == retired.seq }) else {
                throw FederationViolation(.onePositionOneRecord, "\(region.id) retires \(retired.origin)#\(retired.seq), which it never kept")
            }
            region.store.dropped(region.store.entries[index].body.record)
            region.store.entries[index] = retired
        }
        region.store.erased.formUnion(erased)
        try checkRetired(region.store, of: region.id, after: entries)
    }

    /// The region's store keeps one body per noised embedding (the newest
    /// generation it holds) and none of a pid an intent it holds erases:
    /// checked for what this transaction kept (the store's indexes make it
    /// cheap).
    private func checkRetired(_ store: Store, of region: RegionID, after entries: [FederationEntry]) throws {
        var touched: Set<NoisedEmbedding.Key> = []
        for entry in entries {
            switch entry.body.record {
            case .noisedEmbedding(let embedding)?: touched.insert(embedding.key)
            case .erasureIntent(let intent)?: for pid in intent.erasedPids { touched.formUnion(store.keys[pid] ?? []) }
            default: continue
            }
        }
        for key in touched {
            let kept = store.bodies[key] ?? []
            if store.erasedPids.contains(key.pid), !kept.isEmpty {
                throw FederationViolation(.retired, "\(region) keeps a copy of erased \(key.pid)")
            }
            if kept.count > 1 || kept.contains(where: { $0 != store.newest[key] }) {
                throw FederationViolation(.retired, "\(region) keeps generations \(kept.sorted()) of \(key.pid)")
            }
        }
    }

    /// Publishes this region's ack of every intent it holds, expects it and
    /// has durably erased for.
    private func acknowledge(_ region: Region) throws {
        guard let node = region.node else { return }
        for intent in node.intentsAwaitingAck {
            guard region.store.erased.contains(intent.erasureID) else {
                throw FederationViolation(.ackAfterErasure, "\(region.id) holds \(intent.erasureID) unerased after its transaction")
            }
            let ack = ErasureAck.signed(for: intent.request, region: region.id, node: "\(region.id)-1",
                                        erasedAt: Timestamp(milliseconds: Int64(now)), counts: ["subjects": 1], walTruncated: true,
                                        policyVersion: 1, key: region.key)
            try region.node!.publish(.erasureAck(ack))
        }
        if region.node!.hasReady { try handle(region) }
    }

    // MARK: Checks

    private func check(_ ready: FederationReady, in region: Region) throws {
        for entry in ready.persist {
            if case .record(let record) = entry.body {
                guard transfer.allows(record, from: entry.origin, to: region.id) else {
                    throw FederationViolation(.residency, "\(region.id) keeps \(record.kind) \(entry.origin)#\(entry.seq)")
                }
                if case .erasureAck(let ack) = record {
                    let acking = regions.first { $0.id == ack.region }!
                    guard acking.store.erased.contains(ack.erasureID) else {
                        throw FederationViolation(.ackAfterErasure, "\(region.id) keeps an ack of \(ack.region) that did not erase")
                    }
                }
            }
            let position = Position(origin: entry.origin, seq: entry.seq)
            guard let truth = published[position] else {
                // Its own record, published in this batch: recorded when durable.
                if entry.origin == region.id { continue }
                throw FederationViolation(.onePositionOneRecord, "\(region.id) keeps \(entry.origin)#\(entry.seq), never published")
            }
            guard truth.kind == entry.body.kind, entry.body.record.map({ $0 == truth }) ?? true else {
                throw FederationViolation(.onePositionOneRecord, "\(region.id) keeps another record at \(entry.origin)#\(entry.seq)")
            }
        }
        if region.node!.conflicts > 0 {
            throw FederationViolation(.onePositionOneRecord, "\(region.id) received a record unlike the one it holds at its position")
        }
    }

    /// At the origin, after a batch that took acks: a complete certificate
    /// means every expected region acked and durably erased.
    private func checkCertificates(of region: Region, after ready: FederationReady) throws {
        guard let node = region.node else { return }
        for entry in ready.apply {
            guard case .erasureAck(let ack) = entry.body.record, let progress = node.progress(of: ack.erasureID),
                  progress.intent.originRegion == region.id, progress.isComplete else { continue }
            for expected in progress.intent.expectedRegions {
                guard progress.acks[expected] != nil, regions.first(where: { $0.id == expected })!.store.erased.contains(ack.erasureID) else {
                    throw FederationViolation(.certificateSound, "\(ack.erasureID) complete at \(region.id) without \(expected)")
                }
            }
            if completed.insert(ack.erasureID).inserted { outcome.certificatesCompleted += 1 }
        }
    }

    /// nil when converged; otherwise what is still missing.
    private func converged() throws -> String? {
        let truth = publishedVector()
        for region in regions {
            guard let node = region.node else { return "\(region.id) is down" }
            if node.vector != truth { return "\(region.id) holds \(node.vector), the origins published \(truth)" }
            let expected = Set(published.values.compactMap { record -> String? in
                guard case .aggregate(let release) = record,
                      transfer.allows(.aggregate, from: release.region, to: region.id) else { return nil }
                return release.releaseID
            })
            if Set(node.releases.keys) != expected {
                return "\(region.id) holds \(node.releases.count) releases, may hold \(expected.count)"
            }
            if let missing = missingEmbedding(in: region) { return missing }
            for case .erasureIntent(let intent) in published.values {
                if intent.expectedRegions.contains(region.id), !region.store.erased.contains(intent.erasureID) {
                    return "\(region.id) did not erase \(intent.erasureID)"
                }
                if intent.originRegion == region.id, node.progress(of: intent.erasureID)?.isComplete != true {
                    return "\(intent.erasureID) is not complete at its origin \(region.id)"
                }
            }
        }
        return nil
    }

    /// A subject not erased anywhere whose newest published copy (or
    /// retraction) the region's store does not hold, if any.
    private func missingEmbedding(in region: Region) -> String? {
        var erased: Set<PID> = []
        var newest: [NoisedEmbedding.Key: NoisedEmbedding] = [:]
        for record in published.values {
            switch record {
            case .erasureIntent(let intent): erased.formUnion(intent.erasedPids)
            case .noisedEmbedding(let embedding) where (newest[embedding.key]?.generation ?? 0) < embedding.generation:
                newest[embedding.key] = embedding
            default: continue
            }
        }
        let held = Set(region.store.entries.compactMap { entry -> NoisedEmbedding? in
            if case .noisedEmbedding(let embedding)? = entry.body.record { return embedding }
            return nil
        }.map { [$0.key.pid.rawValue, String($0.generation)] })
        for (key, embedding) in newest where !erased.contains(key.pid) && !held.contains([key.pid.rawValue, String(embedding.generation)]) {
            return "\(region.id) lacks generation \(embedding.generation) of \(key.pid)"
        }
        return nil
    }

    private func publishedVector() -> VersionVector {
        var vector = VersionVector()
        for position in published.keys { vector[position.origin] = max(vector[position.origin], position.seq) }
        return vector
    }

    // MARK: Network

    private func send(_ envelope: FederationEnvelope) throws {
        let bytes = try FederationCodec.encode(envelope)
        if case .deltas(let entries, _, let more) = envelope.message {
            guard bytes.count <= plan.settings.exchangeBytesMax, entries.count <= plan.settings.exchangeEntriesMax else {
                throw FederationViolation(.exchangeBounded, "\(envelope.from)→\(envelope.to): \(entries.count) entries, \(bytes.count) bytes")
            }
            if more { outcome.boundedExchanges += 1 }
            if more, entries.count < plan.settings.exchangeEntriesMax { outcome.byteBoundedExchanges += 1 }
            outcome.largestExchangeBytes = max(outcome.largestExchangeBytes, bytes.count)
        }
        outcome.messagesSent += 1
        if let sides, sides[envelope.from] != sides[envelope.to] {
            outcome.messagesDropped += 1
            return
        }
        if chaos, chance(plan.dropProbability) {
            outcome.messagesDropped += 1
            return
        }
        network.append((now + delay(), envelope.to, bytes, envelope))
        if chaos, chance(plan.duplicateProbability) { network.append((now + delay(), envelope.to, bytes, envelope)) }
    }

    private func flowMessages() throws {
        for _ in 0..<64 {
            let due = network.filter { $0.at <= now }
            guard !due.isEmpty else { return }
            network.removeAll { $0.at <= now }
            for message in due.shuffled(using: &random) {
                let envelope: FederationEnvelope
                do {
                    envelope = try FederationCodec.decode(message.bytes)
                } catch {
                    throw FederationViolation(.codec, "\(message.sent.from)→\(message.to): \(error)")
                }
                guard envelope == message.sent else { throw FederationViolation(.codec, "a message changed through the codec") }
                guard let region = regions.first(where: { $0.id == message.to }), region.node != nil else { continue }
                region.node!.step(envelope)
                try handle(region)
            }
        }
    }

    private func delay() -> UInt64 { chance(0.5) ? 0 : UInt64.random(in: 1...4, using: &random) }

    private func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &random) < probability }

    // MARK: Crashes

    private func crash(_ region: Region) {
        region.node = nil
        outcome.crashes += 1
    }

    /// From the durable store alone; then the acks a crash may have cut off.
    private func restart(_ region: Region) throws {
        region.node = try makeNode(region)
        outcome.restarts += 1
        try acknowledge(region)
    }

    private func makeNode(_ region: Region) throws -> FederationNode {
        try FederationNode(region: region.id, peers: regions.map(\.id), settings: plan.settings, transfer: transfer,
                           randomSeed: random.next(), restoring: region.store.entries)
    }

    // MARK: What the clients publish

    private func mintedID(_ kind: IDKind) -> String {
        kind.id(randomBytes: (0..<IDKind.randomByteCount).map { _ in UInt8.random(in: 0...255, using: &random) })
    }

    private func release(in region: RegionID) throws -> AggregateRelease {
        let result: AggregateRelease.Result
        if chance(0.5) {
            result = .value(Double(Int.random(in: -5...500, using: &random)))
        } else {
            let count = chance(plan.largeRecordProbability) ? Int.random(in: 200...300, using: &random) : Int.random(in: 1...8, using: &random)
            result = .values((0..<count).map { AggregateRelease.Category(label: "c\($0)", value: Double(Int.random(in: 0...99, using: &random))) })
        }
        let isCount = if case .value = result { true } else { false }
        return try AggregateRelease(releaseID: mintedID(.release), name: try Name("visits", what: "aggregate"), region: region,
                                    kind: try Name(isCount ? "count" : "histogram", what: "kind"),
                                    dataset: try Name("default", what: "dataset"), result: result,
                                    mechanism: try Name("laplace", what: "mechanism"), epsilon: 0.5, delta: 0, noiseScale: 2.8,
                                    releasedAt: Timestamp(milliseconds: Int64(now)), policyVersion: 1)
    }

    /// The next generation of a copy of one of the region's subjects: a noised vector, or one time in four a retraction.
    private func embedding(in region: RegionID) throws -> NoisedEmbedding {
        let pid = subjects[region]!.randomElement(using: &random)!
        let generation = (generations[pid] ?? 0) + 1
        generations[pid] = generation
        let content: NoisedEmbedding.Content = chance(0.25)
            ? .retracted
            : .vector((0..<8).map { _ in Float.random(in: -1...1, using: &random) }, sigma: 0.5, epsilon: 4, delta: 1e-6)
        return try NoisedEmbedding(region: region, collection: Self.collection, purpose: try Purpose("product_recs"), pid: pid,
                                   generation: generation,
                                   exportedAt: Timestamp(milliseconds: Int64(now)), content: content)
    }

    private func intent(from region: Region) throws -> ErasureIntent {
        let expected = Dictionary(uniqueKeysWithValues: regions.map { ($0.id, ["\($0.id)-1"]) })
        let request = SignedErasureRequest.signed(
            erasureID: mintedID(.erasure), requestedAt: Timestamp(milliseconds: Int64(now)),
            dueAt: Timestamp(milliseconds: Int64(now) + 30 * 86_400_000), jurisdiction: "gdpr", originRegion: region.id,
            originNode: "\(region.id)-1", policyVersion: 1,
            linkHash: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }, expectedNodes: expected, key: region.key)
        let count = chance(plan.largeRecordProbability) ? Int.random(in: 40...60, using: &random) : Int.random(in: 1...3, using: &random)
        // Now and then one of the subjects whose copies travel: its copies are retired everywhere.
        let pids = (0..<count).map { _ in
            chance(0.3) ? regions.flatMap { subjects[$0.id]! }.randomElement(using: &random)!
                : PID(keyVersion: 1, region: regions.randomElement(using: &random)!.id,
                      digest: (0..<PID.digestByteCount).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
        return try ErasureIntent(request: request, erasedPids: pids)
    }
}
