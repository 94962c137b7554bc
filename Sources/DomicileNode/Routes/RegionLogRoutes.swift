import DomicileModel
import DomicileNet

/// `POST /v1/cluster/region-log/members` and `DELETE
/// /v1/cluster/region-log/members/{name}`: adding a node to the running
/// region (as a learner, promoted once caught up) and removing one. Admin
/// only, served by the leader (a follower forwards), audited; `domicile
/// cluster add-node` and `remove-node` call them.
enum RegionLogRoutes {
    struct MemberRequest: Decodable {
        let name: String
    }

    /// How long an addition may wait for the new node to catch up.
    static let catchUpMilliseconds: Int64 = 120_000

    static func add(to api: inout API) {
        let services = api.services
        api.route("POST", "/v1/cluster/region-log/members", roles: [.admin], bodyBytesMax: 1_024) { request in
            let log = try regionLog(services)
            let body = try request.http.decode(MemberRequest.self)
            let node = try nodeName(body.name)
            do {
                try await log.add(node, timeoutMilliseconds: catchUpMilliseconds)
            } catch let refused as RegionLog.MembershipRefused {
                throw DomainError(.conflict, code: "membership_refused", detail: refused.description)
            }
            try await services.audit(request.call.event("region_log.member_add", detail: "node=\(node)"))
            return .json(SystemRoutes.regionLogView(log))
        }
        api.route("DELETE", "/v1/cluster/region-log/members/{name}", roles: [.admin]) { request in
            let log = try regionLog(services)
            let node = try nodeName(request.http.parameter("name"))
            do {
                try await log.remove(node, timeoutMilliseconds: 10_000)
            } catch let refused as RegionLog.MembershipRefused {
                throw DomainError(.conflict, code: "membership_refused", detail: refused.description)
            }
            try await services.audit(request.call.event("region_log.member_remove", detail: "node=\(node)"))
            return .json(SystemRoutes.regionLogView(log))
        }
    }

    private static func regionLog(_ services: NodeServices) throws(DomainError) -> RegionLog {
        guard let log = services.regionLog.value else {
            throw DomainError(.conflict, code: "no_region_log", detail: "this node runs without a region log (config region_log)")
        }
        return log
    }

    private static func nodeName(_ text: String) throws(DomainError) -> NodeName {
        guard let node = try? NodeName(text) else { throw DomainError.invalid("name", "must be a node name") }
        return node
    }
}
