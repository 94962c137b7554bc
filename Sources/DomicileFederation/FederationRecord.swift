import DomicileModel
import DomicilePrivacy

/// The kinds of record the federation carries, and nothing else: the type
/// numbers are the codec's (docs/FORMATS.md, "Federation records and
/// exchange"), append-only.
///
/// Every kind is a CRDT: a record is immutable, keyed by its own id, and a
/// region's set of them only grows, so duplicates and order do not matter.
/// Identity, consent, feature, embedding and audit rows have no kind here:
/// what cannot be encoded cannot leave its region (DESIGN.md section 3,
/// invariant 1).
public enum FederationRecordKind: UInt8, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    case aggregate = 1
    case erasureIntent = 2
    case erasureAck = 3
    case noisedEmbedding = 4

    /// The residency policy's data class of the kind (its transfer rules decide).
    public var dataClass: DataClass {
        switch self {
        case .aggregate: .aggregate
        case .erasureIntent, .erasureAck: .erasureSignal
        case .noisedEmbedding: .noisedEmbedding
        }
    }

    public var description: String {
        switch self {
        case .aggregate: "aggregate"
        case .erasureIntent: "erasure_intent"
        case .erasureAck: "erasure_ack"
        case .noisedEmbedding: "noised_embedding"
        }
    }
}

/// One record of the federation.
public enum FederationRecord: Sendable, Equatable {
    /// A differentially private release, immutable, keyed by its release id.
    case aggregate(AggregateRelease)
    /// An erasure request on its way to the regions it expects.
    case erasureIntent(ErasureIntent)
    /// One region's signed answer to an intent.
    case erasureAck(ErasureAck)
    /// A subject's noised vector in a collection, or its retraction; the
    /// newest generation of a (collection, pid) wins.
    case noisedEmbedding(NoisedEmbedding)

    public var kind: FederationRecordKind {
        switch self {
        case .aggregate: .aggregate
        case .erasureIntent: .erasureIntent
        case .erasureAck: .erasureAck
        case .noisedEmbedding: .noisedEmbedding
        }
    }

    /// The region whose record it is: only that region may publish it.
    public var region: RegionID {
        switch self {
        case .aggregate(let release): release.region
        case .erasureIntent(let intent): intent.request.originRegion
        case .erasureAck(let ack): ack.region
        case .noisedEmbedding(let embedding): embedding.region
        }
    }
}
