import DomicileModel

/// One position in an origin region's sequence: the origin numbers its
/// records 1, 2, 3, … as it publishes them.
public struct FederationEntry: Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        case record(FederationRecord)
        /// A placeholder for a record the residency policy keeps from the
        /// region that holds it (or from the one it is sent to): only its
        /// kind. It fills the position so that the receiver's contiguous
        /// vector advances past it (docs/FEDERATION.md, "Denied records").
        case skipped(FederationRecordKind)
        /// A placeholder for a record every region drops: a noised embedding
        /// a newer generation superseded, or one of a subject erased. Unlike
        /// `skipped`, any region relays it as it is (no region keeps the
        /// body to give instead; docs/FEDERATION.md, "Noised embeddings").
        case retired(FederationRecordKind)

        public var kind: FederationRecordKind {
            switch self {
            case .record(let record): record.kind
            case .skipped(let kind), .retired(let kind): kind
            }
        }

        public var record: FederationRecord? {
            if case .record(let record) = self { return record }
            return nil
        }
    }

    public let origin: RegionID
    public let seq: UInt64
    public let body: Body

    public init(origin: RegionID, seq: UInt64, body: Body) {
        self.origin = origin
        self.seq = seq
        self.body = body
    }
}
