import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileVectors

/// A search, local or federated (DESIGN.md section 8; docs/FEDERATION.md,
/// "Federated search"). A federated one merges this region's exact,
/// consent-filtered results with the other regions' noised copies: the
/// replicas this region holds, or with `fresh` a request to each region
/// (`RemoteSearch`) answered from the copies it exported, as consent stands
/// there now. Every hit says where it comes from; the report says, per
/// region, what was searched and how; a region that could not be searched
/// makes the result `partial` — never an error.
enum FederatedSearch {
    enum Source: String, Sendable {
        case local, replica, remote
    }

    struct Hit: Sendable {
        let pid: String
        let score: Float
        let region: RegionID
        let source: Source

        /// Full-precision scores are this region's; every other is against a noised copy.
        var scoreKind: String { source == .local ? "exact" : "noised" }
    }

    /// One region's part, in the manner of Elasticsearch's `_clusters.details`.
    struct RegionReport: Sendable {
        /// `local`, `replica`, `remote`; or `unreachable`, `skipped`, `denied`.
        var status: String
        var tookMilliseconds: Int64?
        var hits: Int?
        var asOf: Timestamp?
        var reason: String?

        /// Whether the region's results are missing from the response.
        var isMissing: Bool { status == "unreachable" || status == "skipped" }
    }

    struct Result: Sendable {
        let hits: [Hit]
        let regions: [RegionID: RegionReport]
        var partial: Bool { regions.values.contains(where: \.isMissing) }
    }

    struct Request: Sendable {
        let query: VectorService.Query
        let k: Int
        let ef: Int?
        let purpose: Purpose
        let federated: Bool
        let fresh: Bool
        let deadlineMilliseconds: Int64
    }

    static let defaultDeadlineMilliseconds: Int64 = 500
    static let deadlineRange: ClosedRange<Int64> = 10...60_000

    static func search(_ request: Request, in collection: VectorCollections.Collection, call: CallContext) async throws -> Result {
        let services = call.services
        let started = monotonicMilliseconds()
        let deadline = started + request.deadlineMilliseconds
        let local = try await VectorService.searchUnaudited(request.query, k: request.k, ef: request.ef, purpose: request.purpose,
                                                            in: collection, call: call)
        var hits = local.hits.map { Hit(pid: $0.label, score: $0.score, region: services.region, source: .local) }
        var reports = [services.region: RegionReport(status: "local", tookMilliseconds: monotonicMilliseconds() - started, hits: local.hits.count)]
        if request.federated {
            let others = services.policy.regions.keys.filter { $0 != services.region }.sorted()
            let parts = request.fresh
                ? await remote(others, local: local, request: request, collection: collection, deadline: deadline, services: services)
                : try replicas(others, vector: local.vector, request: request, collection: collection, services: services)
            for (region, part) in parts {
                reports[region] = part.report
                hits += part.hits
            }
        }
        let merged = Array(hits.filter { $0.pid != local.example?.rawValue }.sorted { $0.score > $1.score }.prefix(request.k))
        let scope = request.federated ? (request.fresh ? "federated_fresh" : "federated") : "local"
        try await VectorService.auditSearch(local, returned: merged.count, scope: scope, in: collection, call: call)
        return Result(hits: merged, regions: reports)
    }

    private typealias Part = (hits: [Hit], report: RegionReport)

    /// The replicas of each region, searched here with the query as it came
    /// (nothing leaves the region). A region this region holds no
    /// federation entry of — it never synchronized with it — is missing.
    private static func replicas(_ regions: [RegionID], vector: [Float], request: Request, collection: VectorCollections.Collection,
                                 services: NodeServices) throws -> [RegionID: Part] {
        let indexes = collection.replicas.regions
        let synced = try services.store.read { try FederationRecords.origins(in: $0) }
        var parts: [RegionID: Part] = [:]
        for region in regions {
            guard services.policy.transfer(.noisedEmbedding, from: region, to: services.region) != nil else {
                parts[region] = ([], RegionReport(status: "denied", reason: "policy"))
                continue
            }
            guard synced.contains(region) else {
                parts[region] = ([], RegionReport(status: "unreachable", reason: "never_synced"))
                continue
            }
            let started = monotonicMilliseconds()
            let asOf = [collection.replicas.asOf(region), services.federation.value?.lastContact(with: region)].compactMap { $0 }.max()
            let found = (try? indexes[region]?.search(vector, k: request.k, ef: request.ef, now: services.clock.now().milliseconds).hits) ?? []
            let hits = found.map { Hit(pid: $0.label, score: $0.score, region: region, source: .replica) }
            parts[region] = (hits, RegionReport(status: "replica", tookMilliseconds: monotonicMilliseconds() - started, hits: hits.count,
                                                asOf: asOf))
        }
        return parts
    }

    /// One request per region, all at once, each given what is left of the
    /// deadline. A query by pid travels as the subject's noised copy only.
    private static func remote(_ regions: [RegionID], local: VectorService.LocalSearch, request: Request,
                               collection: VectorCollections.Collection, deadline: Int64, services: NodeServices) async -> [RegionID: Part] {
        var parts: [RegionID: Part] = [:]
        var vector = local.vector
        if let example = local.example {
            guard collection.definition.export != nil, let noised = collection.exports.vector(of: example.rawValue) else {
                let reason = collection.definition.export == nil ? "export_not_allowed" : "no_export"
                for region in regions { parts[region] = ([], RegionReport(status: "skipped", reason: reason)) }
                return parts
            }
            vector = noised
        }
        let query = RemoteSearch.Query(from: services.region.rawValue, collection: collection.definition.name.rawValue,
                                       purpose: request.purpose.rawValue, vector: vector, k: request.k, ef: request.ef)
        // A pid's noised copy goes only where its ε is within the floor, as its replica would.
        let epsilon = local.example == nil ? nil : collection.definition.export?.epsilon
        let asked = regions.filter { region in
            RemoteSearch.allowed(between: services.region, and: region, policy: services.policy)
                && epsilon.map { RemoteSearch.withinFloor($0, from: services.region, to: region, policy: services.policy) } ?? true
        }
        for region in regions where !asked.contains(region) { parts[region] = ([], RegionReport(status: "denied", reason: "policy")) }
        await withTaskGroup(of: (RegionID, Part).self) { group in
            for region in asked {
                group.addTask {
                    let started = monotonicMilliseconds()
                    let outcome = await RemoteSearch.ask(region, query, deadline: deadline, services: services)
                    let took = monotonicMilliseconds() - started
                    switch outcome {
                    case .answered(let answer):
                        let hits = answer.hits.map { Hit(pid: $0.pid, score: $0.score, region: region, source: .remote) }
                        return (region, (hits, RegionReport(status: "remote", tookMilliseconds: took, hits: hits.count,
                                                            asOf: Timestamp(milliseconds: answer.asOf))))
                    case .failed(let reason):
                        return (region, ([], RegionReport(status: "unreachable", tookMilliseconds: took, reason: reason)))
                    }
                }
            }
            for await (region, part) in group { parts[region] = part }
        }
        return parts
    }
}
