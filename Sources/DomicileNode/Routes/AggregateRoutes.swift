import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// Differentially private aggregates of this region, and the budget they
/// are charged to.
enum AggregateRoutes {
    static func add(to api: inout API) {
        let services = api.services
        api.route("POST", "/v1/aggregates", roles: [.analyst]) { try await release($0, services) }
        api.route("GET", "/v1/aggregates/{name}", roles: [.analyst]) { try latest($0, services) }
        api.route("GET", "/v1/aggregates/{name}/global", roles: [.analyst]) { request in
            let view = try AggregateService.global(named: request.http.parameter("name"), call: request.call)
            return AggregateCSV.isWanted(request.http) ? AggregateCSV.response(AggregateCSV.rows(of: view)) : .json(GlobalJSON(view: view))
        }
        api.route("GET", "/v1/privacy-budget", roles: [.analyst, .privacyOfficer]) { try await budget($0, services) }
        api.route("POST", "/v1/privacy-budget/charges", roles: [.analyst]) { try await charge($0, services) }
    }

    // MARK: Releases

    static func release(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let query = try AggregateService.query(from: try request.http.decode(AggregateService.ReleaseFields.self), services: services)
        let (release, remaining) = try await AggregateService.release(query, call: request.call)
        return .json(ReleaseJSON(release: release, remaining: remaining), status: 201)
    }

    // MARK: Reading releases

    static func latest(_ request: APIRequest, _ services: NodeServices) throws -> HTTPResponse {
        let (release, remaining) = try AggregateService.latest(named: request.http.parameter("name"), call: request.call)
        if AggregateCSV.isWanted(request.http) { return AggregateCSV.response(AggregateCSV.rows(of: release)) }
        return .json(ReleaseJSON(release: release, remaining: remaining))
    }

    // MARK: Budget

    /// The region's budget, and the embedding exports charged to subjects'
    /// budgets (`?pid=`: that subject's charges too, audited).
    static func budget(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let (standing, limits) = try AggregateService.standing(call: request.call)
        let pid = try request.http.queryParameters()["pid"].map { try services.homePID($0) }
        let period = limits.period.key(at: request.call.now)
        let (embeddings, charges) = try services.store.read { database in
            (try EmbeddingLedger.standing(period: period, in: database),
             try pid.map { try EmbeddingLedger.charges(of: $0, period: period, in: database) })
        }
        if let pid {
            try await services.audit(request.call.event("privacy_budget.read", pid: pid.rawValue, detail: "charges=\(charges?.count ?? 0)"))
        }
        let configured = services.configuration.limits
        return .json(BudgetJSON(standing: standing, limits: limits,
                                embeddings: EmbeddingJSON(standing: embeddings, pid: pid, charges: charges,
                                                          perSubject: .init(epsilon: configured.embeddingEpsilonPerPeriod,
                                                                            delta: configured.embeddingDeltaPerPeriod))))
    }

    static func charge(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(AggregateService.ChargeFields.self)
        let (id, epsilon) = try await AggregateService.charge(body, call: request.call)
        return .json(ChargeJSON(id: id, epsilon: epsilon, delta: body.delta), status: 201)
    }

    // MARK: JSON

    struct ReleaseJSON: JSONWritable {
        let release: Release
        /// What the release's label may still spend this period.
        let remaining: PrivacyLedger.Spend

        func write(to json: inout JSONWriter) {
            json.object { json in
                release.writeMembers(to: &json)
                json.key("budget_remaining")
                BudgetJSON.write(remaining, to: &json)
            }
        }
    }

    /// Every region's latest release and their combination (API.md, "Aggregates"; docs/DECISIONS.md, "The global view").
    struct GlobalJSON: JSONWritable {
        let view: GlobalAggregate

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("name", view.name)
                json.member("kind", view.kind)
                json.member("combined_as", view.combinedAs.rawValue)
                view.result.write(to: &json)
                json.member("noise_scale", view.noiseScale)
                json.key("interval")
                json.object { json in
                    json.member("level", GlobalAggregate.intervalLevel)
                    json.member("half_width", view.intervalHalfWidth)
                    if case .value(let value) = view.result {
                        json.member("low", value - view.intervalHalfWidth)
                        json.member("high", value + view.intervalHalfWidth)
                    }
                }
                json.member("epsilon", view.epsilon)
                json.member("delta", view.delta)
                json.member("epsilon_assumption", "disjoint_subjects")
                json.key("regions")
                json.object { json in
                    for release in view.releases {
                        json.key(escaping: release.region)
                        json.object { release.writeMembers(to: &$0) }
                    }
                }
                json.key("missing_regions")
                json.array(view.missingRegions) { $0.value($1) }
                json.key("mismatched_regions")
                json.array(view.mismatchedRegions) { $0.value($1) }
            }
        }
    }

    /// The region's limit, spend and remainder for the period, and each
    /// label that spent or has a cap: its spend, its cap, and what it may
    /// still spend (the region's remainder, or its cap's if smaller).
    struct BudgetJSON: JSONWritable {
        let standing: PrivacyLedger.Standing
        let limits: PrivacyLedger.Limits
        var embeddings: EmbeddingJSON?

        static func write(_ amount: PrivacyLedger.Spend, to json: inout JSONWriter) {
            json.object { json in
                json.member("epsilon", amount.epsilon)
                json.member("delta", amount.delta)
            }
        }

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("period", standing.period)
                json.member("period_kind", limits.period.rawValue)
                json.key("limits")
                Self.write(limits.region, to: &json)
                json.key("spent")
                Self.write(standing.region, to: &json)
                json.key("remaining")
                Self.write(standing.region.remaining(of: limits.region), to: &json)
                json.key("datasets")
                json.array(Set(standing.labels.keys).union(limits.labelCaps.keys).sorted()) { json, dataset in
                    let spent = standing.label(dataset)
                    let remaining = standing.remaining(for: dataset, limits: limits)
                    json.object { json in
                        json.member("dataset", dataset.rawValue)
                        json.member("epsilon_spent", spent.epsilon)
                        json.member("delta_spent", spent.delta)
                        json.member("epsilon_remaining", remaining.epsilon)
                        json.member("delta_remaining", remaining.delta)
                        if let cap = limits.labelCaps[dataset] {
                            json.key("cap")
                            Self.write(cap, to: &json)
                        }
                    }
                }
                if let embeddings {
                    json.key("embeddings")
                    embeddings.write(to: &json)
                }
            }
        }
    }

    /// Noised embeddings exported this period, each charged to its subject's budget.
    struct EmbeddingJSON: JSONWritable {
        let standing: EmbeddingLedger.Standing
        let pid: PID?
        let charges: [EmbeddingLedger.SubjectCharge]?
        let perSubject: PrivacyLedger.Spend

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("limits_per_subject")
                BudgetJSON.write(perSubject, to: &json)
                json.member("exports", standing.exports)
                json.member("subjects", standing.subjects)
                json.key("largest_subject_spend")
                BudgetJSON.write(standing.largestSubjectSpend, to: &json)
                json.member("refused_over_budget", standing.refused)
                json.key("collections")
                json.array(standing.collections) { json, collection in
                    json.object { json in
                        json.member("collection", collection.collection)
                        json.member("exports", collection.exports)
                        json.member("epsilon_spent", collection.spent.epsilon)
                        json.member("delta_spent", collection.spent.delta)
                    }
                }
                if let pid, let charges {
                    json.key("subject")
                    json.object { json in
                        json.member("pid", pid.rawValue)
                        let spent = charges.reduce(PrivacyLedger.Spend()) { $0 + PrivacyLedger.Spend(epsilon: $1.epsilon, delta: $1.delta) }
                        json.key("spent")
                        BudgetJSON.write(spent, to: &json)
                        json.key("remaining")
                        BudgetJSON.write(spent.remaining(of: perSubject), to: &json)
                        json.key("charges")
                        json.array(charges) { json, charge in
                            json.object { json in
                                json.member("collection", charge.collection)
                                json.member("epsilon", charge.epsilon)
                                json.member("delta", charge.delta)
                                json.member("charged_at", charge.chargedAt)
                            }
                        }
                    }
                }
            }
        }
    }

    struct ChargeJSON: JSONWritable {
        let id: String
        let epsilon: Double
        let delta: Double

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("charge_id", id)
                json.member("epsilon", epsilon)
                json.member("delta", delta)
                json.member("accountant", "rdp")
            }
        }
    }
}

/// A release as the API serves it.
extension Release {
    func writeMembers(to json: inout JSONWriter) {
        json.member("release_id", releaseID)
        json.member("region", region)
        json.member("name", name)
        json.member("kind", kind)
        json.member("dataset", dataset)
        result.write(to: &json)
        json.member("mechanism", mechanism)
        json.member("epsilon", epsilon)
        json.member("delta", delta)
        json.member("noise_scale", noiseScale)
        json.member("released_at", releasedAt.rfc3339)
    }
}
