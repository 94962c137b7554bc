import DomicileCrypto
@testable import DomicileFederation
import DomicileModel
import DomicilePrivacy

/// Records and regions for the machine's and the codec's tests.
enum Fixtures {
    static let eu = try! RegionID("eu")
    static let us = try! RegionID("us")
    static let br = try! RegionID("br")
    static let key = try! Ed25519PrivateKey(seed: [UInt8](repeating: 7, count: Ed25519PrivateKey.seedByteCount))

    static func id(_ kind: IDKind, _ number: Int) -> String {
        kind.id(randomBytes: (0..<IDKind.randomByteCount).map { UInt8(truncatingIfNeeded: number >> (8 * ($0 % 8))) })
    }

    static func release(_ number: Int, in region: RegionID, categories: Int = 0) -> AggregateRelease {
        let result: AggregateRelease.Result = categories == 0
            ? .value(Double(number) + 0.25)
            : .values((0..<categories).map { AggregateRelease.Category(label: "c\($0)", value: Double($0)) })
        return try! AggregateRelease(releaseID: id(.release, number), name: try! Name("visits", what: "aggregate"), region: region,
                                     kind: try! Name(categories == 0 ? "count" : "histogram", what: "kind"),
                                     dataset: try! Name("default", what: "dataset"), result: result,
                                     mechanism: try! Name("gaussian", what: "mechanism"), epsilon: 0.5, delta: 1e-6, noiseScale: 3.5,
                                     releasedAt: Timestamp(milliseconds: 1_790_000_000_000 + Int64(number)), policyVersion: 2)
    }

    static func request(_ number: Int, from origin: RegionID, expecting regions: [RegionID]) -> SignedErasureRequest {
        SignedErasureRequest.signed(erasureID: id(.erasure, number), requestedAt: Timestamp(milliseconds: 1_790_000_000_000),
                                    dueAt: Timestamp(milliseconds: 1_792_592_000_000), jurisdiction: "gdpr", originRegion: origin,
                                    originNode: "\(origin)-1", policyVersion: 2, linkHash: [UInt8](repeating: UInt8(number & 0xFF), count: 32),
                                    expectedNodes: Dictionary(uniqueKeysWithValues: regions.map { ($0, ["\($0)-1", "\($0)-2"]) }), key: key)
    }

    static func pid(_ number: Int, in region: RegionID) -> PID {
        PID(keyVersion: 1, region: region, digest: (0..<PID.digestByteCount).map { UInt8(truncatingIfNeeded: number &+ $0) })
    }

    static func intent(_ number: Int, from origin: RegionID, expecting regions: [RegionID], pids: Int = 2) -> ErasureIntent {
        try! ErasureIntent(request: request(number, from: origin, expecting: regions),
                           erasedPids: (0..<pids).map { pid(number * 100 + $0, in: regions[$0 % regions.count]) })
    }

    static func ack(of intent: ErasureIntent, by region: RegionID) -> ErasureAck {
        ErasureAck.signed(for: intent.request, region: region, node: "\(region)-1", erasedAt: Timestamp(milliseconds: 1_790_000_100_000),
                          counts: ["subjects": 1, "features": 3], walTruncated: true, policyVersion: 2, key: key)
    }

    static let collection = try! Name("products", what: "collection")

    /// Subject `number`'s noised copy (or retraction, `vector` nil) of generation `generation`.
    static func embedding(_ number: Int, in region: RegionID, generation: UInt64, vector: [Float]? = [0.25, -0.5, 1.0],
                          epsilon: Double = 4) -> NoisedEmbedding {
        try! NoisedEmbedding(region: region, collection: collection, purpose: try! Purpose("product_recs"), pid: pid(number, in: region),
                             generation: generation,
                             exportedAt: Timestamp(milliseconds: 1_790_000_000_000 + Int64(generation)),
                             content: vector.map { .vector($0, sigma: 0.4, epsilon: epsilon, delta: 1e-6) } ?? .retracted)
    }

    static func node(_ region: RegionID, peers: [RegionID] = [eu, us, br], transfer: FederationTransfer = .everything,
                     settings: FederationSettings = .testing, restoring: [FederationEntry] = []) throws -> FederationNode {
        try FederationNode(region: region, peers: peers, settings: settings, transfer: transfer, randomSeed: 1, restoring: restoring)
    }

    /// Aggregates may not go from `origin` to `destination`; everything else may.
    static func denyingAggregates(from origin: RegionID, to destination: RegionID) -> FederationTransfer {
        FederationTransfer { kind, from, to in !(kind == .aggregate && from == origin && to == destination) }
    }
}

/// A few regions whose messages are delivered by hand, each through the codec.
struct Federation {
    var nodes: [RegionID: FederationNode]
    /// Every `FederationReady` each region produced, in order.
    var readies: [RegionID: [FederationReady]] = [:]
    var inFlight: [FederationEnvelope] = []

    init(_ nodes: [FederationNode]) {
        self.nodes = Dictionary(uniqueKeysWithValues: nodes.map { ($0.region, $0) })
    }

    subscript(region: RegionID) -> FederationNode {
        get { nodes[region]! }
        set { nodes[region] = newValue }
    }

    /// Collects what `region` has ready; its messages go in flight.
    mutating func drain(_ region: RegionID) throws {
        let ready = nodes[region]!.ready()
        readies[region, default: []].append(ready)
        for message in ready.messages { inFlight.append(try FederationCodec.decode(try FederationCodec.encode(message))) }
    }

    /// `from` sends `to` its digest; then everything in flight between the
    /// regions in `among` is delivered until nothing is left (messages to
    /// others are dropped).
    mutating func exchange(_ from: RegionID, _ to: RegionID, among: Set<RegionID>? = nil) throws {
        let allowed = among ?? [from, to]
        nodes[from]!.exchange(with: to)
        try drain(from)
        while !inFlight.isEmpty {
            let envelope = inFlight.removeFirst()
            guard allowed.contains(envelope.to), allowed.contains(envelope.from) else { continue }
            nodes[envelope.to]!.step(envelope)
            try drain(envelope.to)
        }
    }
}
