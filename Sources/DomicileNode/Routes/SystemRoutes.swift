import DomicileGossip
import DomicileModel
import DomicileNet

/// Health, readiness, metrics, cluster view and policy.
enum SystemRoutes {
    struct Cluster: Encodable {
        struct ThisNode: Encodable {
            let name: String
            let region: RegionID
            let bootId: String
            let http: String
        }

        struct Pools: Encodable {
            let region: [Member]
            let federation: [Member]
        }

        struct Member: Encodable {
            let name: String
            let region: String
            let status: String
            let incarnation: UInt64
            let http: String?
            let bootId: String
        }

        /// The region log as this node sees it (absent without one).
        struct RegionLogView: Encodable {
            struct Voter: Encodable {
                let name: String
                /// The leader's record of the voter's log; the leader's own is its last index.
                let matchIndex: UInt64?
            }

            let role: String
            let leader: String?
            let term: UInt64
            let commitIndex: UInt64
            let appliedIndex: UInt64
            let lastIndex: UInt64
            let voters: [Voter]
            let learners: [String]
        }

        let node: ThisNode
        let region: RegionID
        let policyVersion: Int
        let pools: Pools
        let regionLog: RegionLogView?
        /// Round trips measured to each peer region, by way (gossip probes, federation exchanges).
        let roundTrips: [RoundTrips.Summary]
        let federation: FederationView?

        /// The federation's entries this region holds (docs/FEDERATION.md).
        struct FederationView: Encodable {
            /// Per origin region, how far this region holds every entry: its version vector.
            let held: [String: Int64]
            /// Of those, placeholders of retired noised embeddings.
            let retired: Int64
            /// When this node last exchanged a message with a node of each region.
            let lastContact: [String: String]
        }
    }

    static func add(to api: inout API, httpAddress: @escaping @Sendable () -> String) {
        let services = api.services
        api.open("GET", "/healthz") { _ in .json(bytes: Array(#"{"status":"ok"}"#.utf8)) }
        api.open("GET", "/readyz") { _ in
            switch services.lifecycle.value {
            case .serving:
                if services.store.writer.currentStatistics.diskFull {
                    return .json(bytes: Array(#"{"status":"not_ready","reason":"disk_full"}"#.utf8), status: 503)
                }
                if let log = services.regionLog.value, let reason = log.unavailability {
                    return .json(["status": "not_ready", "reason": reason], status: 503)
                }
                if let gossip = services.gossip.value, !gossip.joined {
                    return .json(bytes: Array(#"{"status":"not_ready","reason":"joining the region's members"}"#.utf8), status: 503)
                }
                // `transport`: `tls` or `plaintext` (an explicit `tls.plaintext` in the config).
                return .json(["status": "ready", "transport": services.configuration.tls.transport])
            case .starting:
                return .json(bytes: Array(#"{"status":"not_ready","reason":"starting"}"#.utf8), status: 503)
            case .draining:
                return .json(bytes: Array(#"{"status":"not_ready","reason":"shutting down"}"#.utf8), status: 503)
            }
        }
        api.open("GET", "/metrics") { _ in
            var text = services.metrics.render(writer: services.store.writer.currentStatistics, counters: [
                ("domicile_log_lines_dropped_total", "Log lines dropped because standard output was not read fast enough.",
                 services.logger.droppedLineCount),
            ], gauges: [
                ("domicile_policy_version", "Version of the residency policy in force.", Double(services.policy.version)),
            ])
            if let gossip = services.gossip.value { text += GossipMetrics.render(gossip) }
            if let log = services.regionLog.value { text += RegionLogMetrics.render(log) }
            return .text(text, contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        api.route("GET", "/v1/cluster", roles: [], local: true) { _ in
            let gossip = services.gossip.value
            func members(_ pool: Pool) -> [Cluster.Member] {
                (gossip?.members(of: pool) ?? []).map {
                    Cluster.Member(name: $0.name.rawValue, region: $0.identity.region.rawValue, status: $0.status.description,
                                   incarnation: $0.incarnation, http: $0.identity.httpAddress, bootId: String($0.identity.bootID, radix: 16))
                }
            }
            return .json(Cluster(node: .init(name: services.configuration.node.rawValue, region: services.region,
                                             bootId: services.bootIDText,
                                             http: httpAddress()),
                                 region: services.region, policyVersion: services.policy.version,
                                 pools: .init(region: members(.region), federation: members(.federation)),
                                 regionLog: services.regionLog.value.map(regionLogView), roundTrips: services.roundTrips.summaries(),
                                 federation: try federationView(services)))
        }
        api.route("GET", "/v1/policy", roles: [], local: true) { _ in
            .json(bytes: services.policy.document)
        }
    }

    static func federationView(_ services: NodeServices) throws -> Cluster.FederationView? {
        guard services.policy.regions.count > 1 else { return nil }
        let rows = try services.store.read { database in
            try database.fetchAll("SELECT origin, max(seq), sum(retired) FROM federation_entries GROUP BY origin") {
                ($0.text(0), $0.int64(1), $0.int64(2))
            }
        }
        let sync = services.federation.value
        let contacts = services.policy.regions.keys.compactMap { region in sync?.lastContact(with: region).map { (region.rawValue, $0.rfc3339) } }
        return .init(held: Dictionary(uniqueKeysWithValues: rows.map { ($0.0, $0.1) }), retired: rows.reduce(0) { $0 + $1.2 },
                     lastContact: Dictionary(uniqueKeysWithValues: contacts))
    }

    static func regionLogView(_ log: RegionLog) -> Cluster.RegionLogView {
        let status = log.status
        let applied = log.appliedIndex
        let voters = status.voters.map { voter in
            Cluster.RegionLogView.Voter(name: voter.rawValue,
                                        matchIndex: voter == log.name ? (status.role == .leader ? status.lastIndex : nil)
                                            : status.matchIndexes[voter])
        }
        return .init(role: status.role.rawValue, leader: status.leader?.rawValue, term: status.term, commitIndex: status.commitIndex,
                     appliedIndex: applied, lastIndex: status.lastIndex, voters: voters, learners: status.learners.map(\.rawValue))
    }
}
