import DomicileModel

/// A region's noised export of one subject's vector in one collection, or
/// its retraction (docs/FEDERATION.md, "Noised embeddings"). Only the
/// subject's home region publishes it; each export or retraction of a
/// (collection, pid) takes the next `generation`, so the newest one wins
/// everywhere and the machine retires the bodies it supersedes.
///
/// The vector was clipped, put on a grid and noised before it was handed to
/// the machine (`EmbeddingNoise`), and the subject's embedding budget was
/// charged for it: nothing here is a full-precision vector.
public struct NoisedEmbedding: Sendable, Equatable {
    public static let dimensionMax = 4_096

    public enum Content: Sendable, Equatable {
        /// The noised vector, with the noise's σ per component and the (ε, δ) it was released under.
        case vector([Float], sigma: Double, epsilon: Double, delta: Double)
        /// The subject's consent no longer covers the collection's purpose,
        /// its vector was deleted, or it was erased: holders drop the replica.
        case retracted
    }

    /// What the newest record wins over: a (collection, pid) of one region.
    public struct Key: Sendable, Hashable, Comparable {
        public let region: RegionID
        public let collection: Name
        public let pid: PID

        public init(region: RegionID, collection: Name, pid: PID) {
            self.region = region
            self.collection = collection
            self.pid = pid
        }

        public static func < (a: Key, b: Key) -> Bool {
            (a.region, a.collection.rawValue, a.pid.rawValue) < (b.region, b.collection.rawValue, b.pid.rawValue)
        }
    }

    public let region: RegionID
    public let collection: Name
    /// The purpose the collection serves: a copy is searched only for it.
    public let purpose: Purpose
    public let pid: PID
    public let generation: UInt64
    public let exportedAt: Timestamp
    public let content: Content

    public init(region: RegionID, collection: Name, purpose: Purpose, pid: PID, generation: UInt64, exportedAt: Timestamp,
                content: Content) throws(FederationError) {
        guard generation >= 1 else { throw .invalidRecord("generation") }
        // A region exports its own subjects only.
        guard pid.region == region else { throw .invalidRecord("pid of another region") }
        if case .vector(let values, let sigma, let epsilon, let delta) = content {
            guard (1...Self.dimensionMax).contains(values.count), values.allSatisfy(\.isFinite) else { throw .invalidRecord("noised vector") }
            guard sigma.isFinite, sigma >= 0, epsilon.isFinite, epsilon > 0, delta >= 0, delta < 1 else {
                throw .invalidRecord("noise parameters")
            }
        }
        self.region = region
        self.collection = collection
        self.purpose = purpose
        self.pid = pid
        self.generation = generation
        self.exportedAt = exportedAt
        self.content = content
    }

    public var key: Key { Key(region: region, collection: collection, pid: pid) }

    public var vector: [Float]? {
        if case .vector(let values, _, _, _) = content { return values }
        return nil
    }

    /// The ε it was released under (nil: a retraction, which releases nothing).
    public var epsilon: Double? {
        if case .vector(_, _, let epsilon, _) = content { return epsilon }
        return nil
    }
}
