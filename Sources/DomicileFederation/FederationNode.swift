import DomicileModel
import DomicilePrivacy

/// One region's side of the federation's anti-entropy, as a value with no
/// I/O, in the manner of `RaftNode`: steps go in — `publish(_:)`, `tick()`,
/// `step(_:)` — and change the state; `ready()` collects what the shell must
/// persist, send and apply (`FederationReady`). Randomness (the peer of each
/// exchange) comes from a seed, time from ticks. docs/FEDERATION.md.
///
/// The state is, per origin region, the sequence of entries the origin
/// numbered 1, 2, 3, … and this region holds as a contiguous prefix: a record,
/// or a placeholder where the residency policy keeps the record away. A
/// region's digest is its version vector; a peer answers it with what the
/// digest lacks, in order per origin, within the exchange's bounds.
public struct FederationNode: Sendable {
    public let region: RegionID
    let settings: FederationSettings
    let transfer: FederationTransfer
    var random: SeededRandom
    /// The other regions of the federation: the peers of exchanges.
    public private(set) var peers: [RegionID]

    /// An entry held, with its record's encoded size (nil: a placeholder).
    struct Held: Sendable {
        var body: FederationEntry.Body
        var bodyBytes: Int?
    }

    /// Per origin, entries 1… in order.
    var logs: [RegionID: [Held]] = [:]

    /// The records held, by their ids (the first one kept when an id repeats).
    public internal(set) var releases: [String: AggregateRelease] = [:]
    public internal(set) var intents: [String: ErasureIntent] = [:]
    /// Per erasure id, the acks held, in the order taken (a region may ack
    /// twice: once more after a crash lost its first ack before it was durable).
    public internal(set) var acks: [String: [ErasureAck]] = [:]
    /// The intents held that expect this region and that it has not acked.
    var unacknowledged: Set<String> = []
    /// Per (region, collection, pid), the position and generation of its
    /// newest noised embedding or retraction held; older bodies are retired.
    var embeddings: [NoisedEmbedding.Key: (seq: UInt64, generation: UInt64)] = [:]
    /// The pids the intents held erase: their noised embeddings are retired
    /// wherever they are, and on arrival.
    var erasedPids: Set<PID> = []

    /// Entries received that differ from the one held at their position:
    /// an origin gave one number to two records (never, when shells persist
    /// before sending).
    public internal(set) var conflicts = 0
    /// Entries received and dropped: a record whose region is not its origin
    /// or over the record bound.
    public internal(set) var refused = 0

    var elapsed = 0
    var outbox: [FederationEnvelope] = []
    var unpersisted: [FederationEntry] = []
    var unapplied: [FederationEntry] = []
    var retirements: [FederationEntry] = []

    /// A region's machine; `restoring` is every entry it persisted, each
    /// origin's in sequence order (origins interleaved in any way).
    public init(region: RegionID, peers: [RegionID], settings: FederationSettings, transfer: FederationTransfer,
                randomSeed: UInt64, restoring entries: [FederationEntry] = []) throws(FederationError) {
        try settings.validate()
        self.region = region
        self.settings = settings
        self.transfer = transfer
        self.random = SeededRandom(seed: randomSeed)
        self.peers = peers.filter { $0 != region }.sorted()
        for entry in entries {
            guard entry.seq == UInt64(logs[entry.origin]?.count ?? 0) + 1 else {
                throw .corruptState("the entries of \(entry.origin) are not 1, 2, 3, …")
            }
            let bodyBytes = entry.body.record.map(FederationCodec.bodySize)
            logs[entry.origin, default: []].append(Held(body: entry.body, bodyBytes: bodyBytes))
            if let record = entry.body.record { index(record, at: entry) }
        }
    }

    // MARK: What the shell may read

    /// Per origin, how far this region holds every entry.
    public var vector: VersionVector { VersionVector(logs.mapValues { UInt64($0.count) }) }

    /// The entries held from `origin`, in order.
    public func entries(from origin: RegionID) -> [FederationEntry] {
        (logs[origin] ?? []).enumerated().map { FederationEntry(origin: origin, seq: UInt64($0.offset + 1), body: $0.element.body) }
    }

    // MARK: Events

    /// Takes a record this region publishes: the next number of its own sequence.
    @discardableResult
    public mutating func publish(_ record: FederationRecord) throws(FederationError) -> FederationEntry {
        guard record.region == region else { throw .notOurs }
        let bodyBytes = try FederationCodec.encode(record).count
        guard bodyBytes <= settings.recordBytesMax else { throw .recordTooLarge(bytes: bodyBytes) }
        let entry = FederationEntry(origin: region, seq: UInt64(logs[region]?.count ?? 0) + 1, body: .record(record))
        take(entry, bodyBytes: bodyBytes)
        return entry
    }

    /// One unit of time: every `exchangeTicks`, a digest to one peer.
    public mutating func tick() {
        elapsed += 1
        guard elapsed >= settings.exchangeTicks else { return }
        elapsed = 0
        if let peer = peers.randomElement(using: &random) { exchange(with: peer) }
    }

    /// Starts an exchange with `peer` now: this region's digest (the shell
    /// may call it when a peer comes back, besides the ticks).
    public mutating func exchange(with peer: RegionID) {
        guard peer != region else { return }
        send(to: peer, .digest(vector))
    }

    /// Sets the federation's other regions (membership changed).
    public mutating func setPeers(_ regions: [RegionID]) {
        peers = regions.filter { $0 != region }.sorted()
    }

    /// A message from a peer region. One for another region, or from this
    /// one, changes nothing.
    public mutating func step(_ envelope: FederationEnvelope) {
        guard envelope.to == region, envelope.from != region else { return }
        let peer = envelope.from
        switch envelope.message {
        case .digest(let theirs):
            let mine = vector
            let (entries, more) = deltas(for: peer, after: theirs, attaching: mine)
            send(to: peer, .deltas(entries: entries, digest: mine, more: more))
        case .deltas(let entries, let theirs, let more):
            accept(entries)
            if let theirs {
                let (back, moreBack) = deltas(for: peer, after: theirs, attaching: nil)
                if !back.isEmpty || moreBack { send(to: peer, .deltas(entries: back, digest: nil, more: moreBack)) }
            }
            if more { send(to: peer, .digest(vector)) }
        }
    }

    // MARK: Output

    public var hasReady: Bool { !outbox.isEmpty || !unpersisted.isEmpty || !unapplied.isEmpty || !retirements.isEmpty }

    /// What the shell must now persist, apply and send (`FederationReady`).
    public mutating func ready() -> FederationReady {
        defer {
            outbox = []
            unpersisted = []
            unapplied = []
            retirements = []
        }
        return FederationReady(persist: unpersisted, messages: outbox, apply: unapplied, retire: retirements)
    }

    // MARK: Helpers

    mutating func send(to peer: RegionID, _ message: FederationMessage) {
        outbox.append(FederationEnvelope(from: region, to: peer, message: message))
    }

    /// Appends `entry` at its origin's next position.
    mutating func take(_ entry: FederationEntry, bodyBytes: Int?) {
        logs[entry.origin, default: []].append(Held(body: entry.body, bodyBytes: bodyBytes))
        unpersisted.append(entry)
        if let record = entry.body.record {
            unapplied.append(entry)
            index(record, at: entry)
        }
    }

    /// Notes a record held at `entry`'s position (and retires what it supersedes or erases).
    mutating func index(_ record: FederationRecord, at entry: FederationEntry) {
        switch record {
        case .aggregate(let release):
            if releases[release.releaseID] == nil { releases[release.releaseID] = release }
        case .erasureIntent(let intent):
            guard intents[intent.erasureID] == nil else { return }
            intents[intent.erasureID] = intent
            if intent.expectedRegions.contains(region), !(acks[intent.erasureID] ?? []).contains(where: { $0.region == region }) {
                unacknowledged.insert(intent.erasureID)
            }
            retireEmbeddings(of: intent.erasedPids)
        case .erasureAck(let ack):
            guard !(acks[ack.erasureID] ?? []).contains(ack) else { return }
            acks[ack.erasureID, default: []].append(ack)
            if ack.region == region { unacknowledged.remove(ack.erasureID) }
        case .noisedEmbedding(let embedding):
            let key = embedding.key
            if erasedPids.contains(embedding.pid) { return retire(entry.origin, entry.seq) }
            if let current = embeddings[key] {
                guard current.generation < embedding.generation else { return retire(entry.origin, entry.seq) }
                if !settings.unsafeKeepSupersededEmbeddings { retire(entry.origin, current.seq) }
            }
            embeddings[key] = (entry.seq, embedding.generation)
        }
    }

    // MARK: Retiring noised embeddings

    /// Every noised embedding held of `pids` is retired, and any that arrives later.
    mutating func retireEmbeddings(of pids: [PID]) {
        guard !pids.isEmpty else { return }
        erasedPids.formUnion(pids)
        let erased = Set(pids)
        // In key order: the shell is told of the retirements in the same order on every run.
        for (key, current) in embeddings.sorted(by: { $0.key < $1.key }) where erased.contains(key.pid) {
            retire(key.region, current.seq)
            embeddings[key] = nil
        }
    }

    /// Drops the body held at a position (a placeholder takes its place,
    /// relayed as it is); the shell is told to do the same to its copy,
    /// unless the entry is not persisted yet (it is then persisted retired).
    mutating func retire(_ origin: RegionID, _ seq: UInt64) {
        let index = Int(seq) - 1
        guard let held = logs[origin]?[index], case .record(let record) = held.body else { return }
        let retired = FederationEntry(origin: origin, seq: seq, body: .retired(record.kind))
        logs[origin]![index] = Held(body: retired.body, bodyBytes: nil)
        unapplied.removeAll { $0.origin == origin && $0.seq == seq }
        if let unpersisted = unpersisted.firstIndex(where: { $0.origin == origin && $0.seq == seq }) {
            self.unpersisted[unpersisted] = retired
        } else {
            retirements.append(retired)
        }
    }
}
