/// A collection of vectors (API.md, "Vectors and search").
public struct CollectionDefinition: Codable, Sendable, Hashable {
    public enum Metric: String, Codable, Sendable { case cosine, l2, dot }

    public struct Index: Codable, Sendable, Hashable {
        /// `flat` or `hnsw`.
        public var kind: String
        public var m: Int?
        public var efConstruction: Int?
        public var ef: Int?

        enum CodingKeys: String, CodingKey { case kind, m, efConstruction = "ef_construction", ef }

        public static let flat = Index(kind: "flat")

        public static func hnsw(m: Int? = nil, efConstruction: Int? = nil, ef: Int? = nil) -> Index {
            Index(kind: "hnsw", m: m, efConstruction: efConstruction, ef: ef)
        }

        public init(kind: String, m: Int? = nil, efConstruction: Int? = nil, ef: Int? = nil) {
            self.kind = kind
            self.m = m
            self.efConstruction = efConstruction
            self.ef = ef
        }
    }

    /// How noised embeddings may leave the region for federated search; without it vectors never leave.
    public struct Export: Codable, Sendable, Hashable {
        public var epsilon: Double
        public var delta: Double
        public var clipNorm: Double

        enum CodingKeys: String, CodingKey { case epsilon, delta, clipNorm = "clip_norm" }

        public init(epsilon: Double, delta: Double, clipNorm: Double) {
            self.epsilon = epsilon
            self.delta = delta
            self.clipNorm = clipNorm
        }
    }

    public var dimension: Int
    public var metric: Metric
    public var purpose: String
    public var index: Index?
    public var export: Export?

    public init(dimension: Int, metric: Metric, purpose: String, index: Index? = nil, export: Export? = nil) {
        self.dimension = dimension
        self.metric = metric
        self.purpose = purpose
        self.index = index
        self.export = export
    }
}

/// A collection as the node stores it.
public struct VectorCollection: Decodable, Sendable, Hashable {
    public let name: String
    public let dimension: Int
    public let metric: CollectionDefinition.Metric
    public let purpose: String
    public let index: CollectionDefinition.Index?
    public let export: CollectionDefinition.Export?
    /// Vectors stored in this region.
    public let count: Int?
}

/// `POST /v1/collections/{name}/search`.
public struct SearchRequest: Encodable, Sendable, Hashable {
    public enum Scope: String, Codable, Sendable {
        /// This region's subjects only, exact scores.
        case local
        /// Also the other regions' noised embeddings.
        case federated
    }

    /// Exactly one of `vector` and `pid` (search by an example subject of the node's region).
    public var vector: [Double]?
    public var pid: String?
    public var k: Int?
    /// HNSW search breadth.
    public var ef: Int?
    /// Must be the collection's; only subjects whose consent covers it appear.
    public var purpose: String
    public var scope: Scope?
    /// Federated: ask one live node per region now instead of reading replicas.
    public var fresh: Bool?
    /// Federated and fresh: how long to wait for the other regions.
    public var deadlineMilliseconds: Int?

    enum CodingKeys: String, CodingKey { case vector, pid, k, ef, purpose, scope, fresh, deadlineMilliseconds = "deadline_ms" }

    public init(vector: [Double], k: Int? = nil, purpose: String, scope: Scope? = nil, fresh: Bool? = nil) {
        self.vector = vector
        self.k = k
        self.purpose = purpose
        self.scope = scope
        self.fresh = fresh
    }

    public init(pid: String, k: Int? = nil, purpose: String, scope: Scope? = nil, fresh: Bool? = nil) {
        self.pid = pid
        self.k = k
        self.purpose = purpose
        self.scope = scope
        self.fresh = fresh
    }
}

/// A search's answer: the hits, best first, and how each region contributed.
public struct SearchResults: Decodable, Sendable, Hashable {
    public struct Hit: Decodable, Sendable, Hashable {
        public let pid: String
        public let score: Double
        /// `exact` (this region's vectors) or `noised` (another region's exported embeddings).
        public let scoreKind: String?
        public let region: String?
        /// `local`, `replica` or `remote`.
        public let source: String?

        enum CodingKeys: String, CodingKey { case pid, score, scoreKind = "score_kind", region, source }
    }

    /// One region's part in the search.
    public struct RegionReport: Decodable, Sendable, Hashable {
        /// `local`, `replica`, `remote`, `unreachable`, …
        public let status: String
        public let tookMilliseconds: Double?
        public let hits: Int?
        /// A replica's age: when it was last synchronized.
        public let asOf: String?
        /// Why a region is missing (`timeout`, …).
        public let reason: String?

        enum CodingKeys: String, CodingKey { case status, tookMilliseconds = "took_ms", hits, asOf = "as_of", reason }

        /// An object, or (from nodes before the federated search) a bare status.
        public init(from decoder: any Decoder) throws {
            if let status = try? decoder.singleValueContainer().decode(String.self) {
                self.status = status
                tookMilliseconds = nil
                hits = nil
                asOf = nil
                reason = nil
                return
            }
            let container = try decoder.container(keyedBy: CodingKeys.self)
            status = try container.decode(String.self, forKey: .status)
            tookMilliseconds = try container.decodeIfPresent(Double.self, forKey: .tookMilliseconds)
            hits = try container.decodeIfPresent(Int.self, forKey: .hits)
            asOf = try container.decodeIfPresent(String.self, forKey: .asOf)
            reason = try container.decodeIfPresent(String.self, forKey: .reason)
        }
    }

    public let results: [Hit]
    /// A region could not contribute (never an error).
    public let partial: Bool?
    public let regions: [String: RegionReport]?

    public var pids: [String] { results.map(\.pid) }
}

extension DomicileClient {
    /// Creates (or redefines) a collection. Admin.
    @discardableResult
    public func defineCollection(_ name: String, _ definition: CollectionDefinition) async throws -> VectorCollection {
        try await send(Call("PUT", "/v1/collections/\(Self.escaped(name))").json(definition))
    }

    /// Stores the subject's vector: `consent_required` without consent to the collection's purpose, `invalid_vector`.
    public func putVector(_ vector: [Double], for pid: String, in collection: String) async throws {
        struct Body: Encodable { let vector: [Double] }
        _ = try await send(Call("PUT", "/v1/collections/\(Self.escaped(collection))/vectors/\(Self.escaped(pid))",
                                region: Routing.region(ofPID: pid)).json(Body(vector: vector)))
    }

    public func deleteVector(for pid: String, in collection: String) async throws {
        _ = try await send(Call("DELETE", "/v1/collections/\(Self.escaped(collection))/vectors/\(Self.escaped(pid))",
                                region: Routing.region(ofPID: pid)))
    }

    /// Nearest subjects whose consent covers the purpose now.
    public func search(_ collection: String, _ request: SearchRequest) async throws -> SearchResults {
        try await send(Call("POST", "/v1/collections/\(Self.escaped(collection))/search", idempotent: true,
                            region: request.pid.flatMap(Routing.region(ofPID:))).json(request))
    }
}
