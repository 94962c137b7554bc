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
        }

        let node: ThisNode
        let region: RegionID
        let policyVersion: Int
        let pools: Pools
    }

    static func add(to api: inout API, httpAddress: @escaping @Sendable () -> String) {
        let services = api.services
        api.open("GET", "/healthz") { _ in .json(bytes: Array(#"{"status":"ok"}"#.utf8)) }
        api.open("GET", "/readyz") { _ in
            switch services.lifecycle.value {
            case .serving:
                return .json(bytes: Array(#"{"status":"ready"}"#.utf8))
            case .starting:
                return .json(bytes: Array(#"{"status":"not_ready","reason":"starting"}"#.utf8), status: 503)
            case .draining:
                return .json(bytes: Array(#"{"status":"not_ready","reason":"shutting down"}"#.utf8), status: 503)
            }
        }
        api.open("GET", "/metrics") { _ in
            let text = services.metrics.render(writer: services.store.writer.currentStatistics, gauges: [
                ("domicile_policy_version", "Version of the residency policy in force.", Double(services.policy.version)),
            ])
            return .text(text, contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        api.route("GET", "/v1/cluster", roles: []) { _ in
            .json(Cluster(node: .init(name: services.configuration.node.rawValue, region: services.region, bootId: services.bootID,
                                      http: httpAddress()),
                          region: services.region, policyVersion: services.policy.version, pools: .init(region: [], federation: [])))
        }
        api.route("GET", "/v1/policy", roles: []) { _ in
            .json(bytes: services.policy.document)
        }
    }
}
