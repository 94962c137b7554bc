/// `GET /v1/cluster`: a node's view of its region and the federation.
public struct ClusterView: Decodable, Sendable, Hashable {
    public struct ThisNode: Decodable, Sendable, Hashable {
        public let name: String
        public let region: String
        public let bootID: String?
        public let http: String?

        enum CodingKeys: String, CodingKey { case name, region, bootID = "boot_id", http }
    }

    /// A member of a gossip pool.
    public struct Member: Decodable, Sendable, Hashable {
        public let name: String
        public let region: String
        /// `alive`, `suspect`, `dead` or `left`.
        public let status: String
        public let incarnation: UInt64?
        public let http: String?
        public let bootID: String?

        enum CodingKeys: String, CodingKey { case name, region, status, incarnation, http, bootID = "boot_id" }
    }

    public struct Pools: Decodable, Sendable, Hashable {
        /// This region's nodes.
        public let region: [Member]
        /// Every region's nodes.
        public let federation: [Member]
    }

    /// The region log as this node sees it.
    public struct RegionLog: Decodable, Sendable, Hashable {
        public struct Voter: Decodable, Sendable, Hashable {
            public let name: String
            public let matchIndex: UInt64?

            enum CodingKeys: String, CodingKey { case name, matchIndex = "match_index" }
        }

        /// `leader`, `follower`, `candidate`, …
        public let role: String
        public let leader: String?
        public let term: UInt64
        public let commitIndex: UInt64
        public let appliedIndex: UInt64
        public let lastIndex: UInt64?
        public let voters: [Voter]
        public let learners: [String]?

        enum CodingKeys: String, CodingKey {
            case role, leader, term, commitIndex = "commit_index", appliedIndex = "applied_index", lastIndex = "last_index", voters, learners
        }
    }

    public let node: ThisNode
    public let region: String
    public let policyVersion: Int?
    public let pools: Pools
    /// Absent on a node without a region log.
    public let regionLog: RegionLog?

    enum CodingKeys: String, CodingKey { case node, region, policyVersion = "policy_version", pools, regionLog = "region_log" }
}

/// `GET /readyz`: whether the node serves, and why not.
public struct Readiness: Decodable, Sendable, Hashable {
    /// `ready` or `not_ready`.
    public let status: String
    /// `no_quorum`, `disk_full`, `starting`, …
    public let reason: String?
    /// When ready: `tls`, or `plaintext` (a node configured to serve in clear).
    public let transport: String?

    public var isReady: Bool { status == "ready" }
}

extension DomicileClient {
    private struct Health: Decodable { let status: String }

    /// `GET /healthz` of the first seed that answers: true while its process runs.
    public func isHealthy() async throws -> Bool {
        try await send(Call("GET", "/healthz"), as: Health.self).status == "ok"
    }

    /// `GET /readyz` of the first seed that answers. A node that is not
    /// ready is an answer here, not an error (and is not retried).
    public func readiness() async throws -> Readiness {
        var call = Call("GET", "/readyz")
        call.answers = [503]
        return try await send(call)
    }

    /// The answering node's view of the cluster.
    public func cluster() async throws -> ClusterView {
        try await send(Call("GET", "/v1/cluster"))
    }

    /// The residency policy in force, as the node holds it.
    public func policy() async throws -> JSONValue {
        try await send(Call("GET", "/v1/policy"))
    }

    /// Adds `node` to the region log of the region the answering node is
    /// in (a learner until it catches up; the call waits for that, up to two minutes). Admin.
    @discardableResult
    public func addRegionLogMember(_ node: String) async throws -> ClusterView.RegionLog {
        struct Body: Encodable { let name: String }
        var call = try Call("POST", "/v1/cluster/region-log/members", idempotent: false).json(Body(name: node))
        call.timeoutMilliseconds = 130_000
        return try await send(call)
    }

    /// Removes `node` from the answering node's region log. Admin.
    @discardableResult
    public func removeRegionLogMember(_ node: String) async throws -> ClusterView.RegionLog {
        var call = Call("DELETE", "/v1/cluster/region-log/members/\(Self.escaped(node))")
        call.timeoutMilliseconds = 20_000
        return try await send(call)
    }
}
