import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import Foundation

/// Differentially private aggregates of this region, and the budget they
/// are charged to: a release reads every covered subject's contribution,
/// adds calibrated noise and is charged to the region's budget in the
/// transaction that stores it.
enum AggregateService {
    /// What a client asks to release, as sent.
    struct ReleaseFields: Decodable, Sendable {
        let name: String
        let kind: String
        let feature: String?
        let categories: [String]?
        let clamp: [Double]?
        let mechanism: String?
        let epsilon: Double
        let delta: Double?
        let dataset: String?
        let purpose: String?
    }

    static let categoriesMax = 1_000
    static let defaultDataset = "crm"
    static let defaultPurpose = "analytics"

    struct ChargeFields: Decodable, Sendable {
        let dataset: String
        let mechanism: String
        let sampleRate: Double
        let noiseMultiplier: Double
        let steps: Int
        let delta: Double
        let description: String?
    }

    enum Kind: String {
        case count, sum, mean, histogram
    }

    static func limits(_ services: NodeServices) -> PrivacyLedger.Limits {
        PrivacyLedger.Limits(services.configuration.limits)
    }

    /// What a release computes, validated.
    struct Query: Sendable {
        let name: Name
        let kind: Kind
        let feature: Name?
        let categories: [String]
        let clamp: ClosedRange<Double>
        let mechanism: NoiseMechanism
        let epsilon: Double
        let delta: Double
        let dataset: Name
        let purpose: Purpose
    }

    /// The query a release asks for, validated: names, the kind's feature
    /// and categories, clamp bounds, mechanism, ε and δ, dataset label and
    /// purpose (422 naming the field otherwise).
    static func query(from body: ReleaseFields, services: NodeServices) throws(DomainError) -> Query {
        guard let name = try? Name(body.name, what: "aggregate name") else {
            throw DomainError.invalid("name", "1-64 lowercase letters, digits and _, starting with a letter")
        }
        guard let kind = Kind(rawValue: body.kind) else { throw DomainError.invalid("kind", "must be count, sum, mean or histogram") }
        var feature: Name?
        if let text = body.feature {
            guard let parsed = try? Name(text, what: "feature name") else { throw DomainError.invalid("feature", "is not a feature name") }
            feature = parsed
        }
        if kind != .count, feature == nil { throw DomainError.invalid("feature", "is required for \(kind.rawValue)") }
        let categories = body.categories ?? []
        if kind == .histogram {
            guard (1...categoriesMax).contains(categories.count), Set(categories).count == categories.count else {
                throw DomainError.invalid("categories", "declare 1 to \(categoriesMax) distinct categories")
            }
        }
        var clamp: ClosedRange<Double> = 0...1
        if kind == .sum || kind == .mean {
            guard let bounds = body.clamp, bounds.count == 2, bounds[0].isFinite, bounds[1].isFinite, bounds[0] < bounds[1],
                  (1e-6...1e12).contains(max(abs(bounds[0]), abs(bounds[1]))) else {
                throw DomainError.invalid("clamp", "give [low, high] with low < high, both within ±1e12, not both within ±1e-6")
            }
            clamp = bounds[0]...bounds[1]
        }
        guard let mechanism = NoiseMechanism(rawValue: body.mechanism ?? "laplace") else {
            throw DomainError.invalid("mechanism", "must be laplace or gaussian")
        }
        guard body.epsilon > 0, body.epsilon <= 100 else { throw DomainError.invalid("epsilon", "must be above 0 and at most 100") }
        let delta = body.delta ?? 0
        if mechanism == .gaussian { guard delta > 0, delta < 1 else { throw DomainError.invalid("delta", "must be between 0 and 1") } }
        else if delta != 0 { throw DomainError.invalid("delta", "the Laplace mechanism takes no delta") }
        guard let dataset = try? Name(body.dataset ?? defaultDataset, what: "dataset") else {
            throw DomainError.invalid("dataset", "1-64 lowercase letters, digits and _, starting with a letter")
        }
        let purpose = try services.regionPurpose(body.purpose ?? defaultPurpose, field: "purpose")
        return Query(name: name, kind: kind, feature: feature, categories: categories, clamp: clamp, mechanism: mechanism,
                     epsilon: body.epsilon, delta: delta, dataset: dataset, purpose: purpose)
    }

    /// Computes, charges and stores a release; returns it and what its label may still spend.
    static func release(_ query: Query, call: CallContext) async throws -> (release: Release, remaining: PrivacyLedger.Spend) {
        let services = call.services
        if let feature = query.feature {
            let definition = try services.store.read { try FeatureRecords.definition(feature, in: $0) }
            guard let definition else { throw DomainError(.invalid, code: "unknown_feature", detail: "feature: no feature \(feature) is defined") }
            let expected: FeatureType? = switch query.kind {
            case .count: nil
            case .sum, .mean: .number
            case .histogram: .string
            }
            if let expected, definition.type != expected {
                throw DomainError(.invalid, code: "type_mismatch", detail: "feature: \(query.kind.rawValue) needs a \(expected.rawValue) feature")
            }
        }
        let contributions = try await services.scan { try AggregateData.contributions(query, services: services, now: call.now, in: $0) }
        var random = services.random.generator()
        let computed: Computed
        do { computed = try compute(query, contributions, using: &random) } catch {
            throw DomainError.invalid("epsilon", error.description)
        }
        let releaseID = services.ids.next(.release)
        let release = Release(releaseID: releaseID, region: services.region.rawValue, name: query.name.rawValue, kind: query.kind.rawValue,
                              dataset: query.dataset.rawValue, result: computed.result, mechanism: query.mechanism.rawValue,
                              epsilon: query.epsilon, delta: query.delta, noiseScale: computed.noiseScale, releasedAt: call.now)
        let remaining = try await services.store.write { database -> PrivacyLedger.Spend in
            let (_, remaining) = try PrivacyLedger.charge(.init(dataset: query.dataset, mechanism: query.mechanism.rawValue,
                                                                accountant: query.mechanism == .laplace ? "pure" : "analytic_gaussian",
                                                                epsilon: query.epsilon, delta: query.delta, releaseID: releaseID,
                                                                description: "aggregate \(query.name)"),
                                                          id: services.ids.next(.privacyCharge), limits: limits(services),
                                                          now: call.now, in: database)
            try AggregateData.insert(release, in: database)
            try AuditLog.append(call.event("aggregate.release", purpose: query.purpose.rawValue,
                                              detail: "name=\(query.name),dataset=\(query.dataset),epsilon=\(query.epsilon)"), to: database)
            return remaining
        }
        services.metrics.countAudit(action: "aggregate.release", outcome: "ok")
        services.federation.value?.wake()
        return (release, remaining)
    }

    struct Computed {
        let result: AggregateResult
        let noiseScale: Double
    }

    /// Bounds each subject's contribution, puts it on a grid, adds noise.
    static func compute(_ query: Query, _ contributions: AggregateData.Contributions,
                        using random: inout some RandomNumberGenerator) throws(NoiseMechanism.CalibrationError) -> Computed {
        switch query.kind {
        case .count:
            let noise = try query.mechanism.calibrate(epsilon: query.epsilon, delta: query.delta, sensitivity: 1)
            return Computed(result: .value(Double(Int64(contributions.numbers.count) + noise.sample(using: &random))), noiseScale: noise.scale)
        case .histogram:
            // One category per subject: the L1 and L2 sensitivities of the counts are both 1.
            let noise = try query.mechanism.calibrate(epsilon: query.epsilon, delta: query.delta, sensitivity: 1)
            var counts = Dictionary(uniqueKeysWithValues: query.categories.map { ($0, Int64(0)) })
            for category in contributions.strings where counts[category] != nil { counts[category]! += 1 }
            let values = query.categories.map { ($0, Double(counts[$0]! + noise.sample(using: &random))) }
            return Computed(result: .values(values), noiseScale: noise.scale)
        case .sum:
            let (sum, scale) = try noisySum(contributions.numbers, clamp: query.clamp, epsilon: query.epsilon, delta: query.delta,
                                            mechanism: query.mechanism, using: &random)
            return Computed(result: .value(sum), noiseScale: scale)
        case .mean:
            // Half the budget to the sum, half to the count.
            let (sum, scale) = try noisySum(contributions.numbers, clamp: query.clamp, epsilon: query.epsilon / 2, delta: query.delta / 2,
                                            mechanism: query.mechanism, using: &random)
            let noise = try query.mechanism.calibrate(epsilon: query.epsilon / 2, delta: query.delta / 2, sensitivity: 1)
            let count = max(1, Double(Int64(contributions.numbers.count) + noise.sample(using: &random)))
            let mean = min(max(sum / count, query.clamp.lowerBound), query.clamp.upperBound)
            return Computed(result: .value(mean), noiseScale: scale)
        }
    }

    static func noisySum(_ values: [Double], clamp: ClosedRange<Double>, epsilon: Double, delta: Double, mechanism: NoiseMechanism,
                         using random: inout some RandomNumberGenerator) throws(NoiseMechanism.CalibrationError) -> (Double, Double) {
        let bound = max(abs(clamp.lowerBound), abs(clamp.upperBound))
        let grid = Grid(bound: bound)
        let noise = try mechanism.calibrate(epsilon: epsilon, delta: delta, sensitivity: grid.sensitivity(bound: bound))
        var steps: Int64 = 0
        for value in values { steps += grid.steps(min(max(value, clamp.lowerBound), clamp.upperBound)) }
        return (grid.value(steps + noise.sample(using: &random)), noise.scale * grid.step)
    }

    /// The latest release of `text` in this region, and what its label may still spend.
    static func latest(named text: String, call: CallContext) throws -> (release: Release, remaining: PrivacyLedger.Spend) {
        let services = call.services
        guard let name = try? Name(text, what: "aggregate name"),
              let release = try services.store.read({ try AggregateData.latest(name, of: services.region, in: $0) }) else {
            throw DomainError(.notFound, code: "unknown_aggregate", detail: "no release of this aggregate in this region")
        }
        let budget = limits(services)
        let standing = try services.store.read { try PrivacyLedger.standing(period: budget.period.key(at: call.now), in: $0) }
        let remaining = standing.remaining(for: try Name(release.dataset, what: "stored dataset label"), limits: budget)
        return (release, remaining)
    }

    /// Every region's latest release of the name, combined: what this node
    /// holds of them (its own region's releases, and the others' as the
    /// federation delivered them). 404 when no region released it.
    static func global(named text: String, call: CallContext) throws -> GlobalAggregate {
        let services = call.services
        guard let name = try? Name(text, what: "aggregate name") else {
            throw DomainError(.notFound, code: "unknown_aggregate", detail: "no release of this aggregate in any region")
        }
        let regions = services.policy.regions.keys.map(\.rawValue)
        let latest = try services.store.read { try AggregateData.latestPerRegion(name, in: $0) }.filter { regions.contains($0.region) }
        guard let view = GlobalAggregate(latest: latest, regions: regions, preferred: services.region.rawValue) else {
            throw DomainError(.notFound, code: "unknown_aggregate", detail: "no release of this aggregate in any region")
        }
        return view
    }

    /// The region's spend this period, and its limits.
    static func standing(call: CallContext) throws -> (standing: PrivacyLedger.Standing, limits: PrivacyLedger.Limits) {
        let services = call.services
        let budget = limits(services)
        let standing = try services.store.read { try PrivacyLedger.standing(period: budget.period.key(at: call.now), in: $0) }
        return (standing, budget)
    }

    /// Records an external training run's cost (a subsampled Gaussian, accounted by RDP); returns its id and ε.
    static func charge(_ body: ChargeFields, call: CallContext) async throws -> (id: String, epsilon: Double) {
        let services = call.services
        guard let dataset = try? Name(body.dataset, what: "dataset") else {
            throw DomainError.invalid("dataset", "1-64 lowercase letters, digits and _, starting with a letter")
        }
        guard body.mechanism == "subsampled_gaussian" else { throw DomainError.invalid("mechanism", "must be subsampled_gaussian") }
        guard body.sampleRate > 0, body.sampleRate <= 1 else { throw DomainError.invalid("sample_rate", "must be in (0, 1]") }
        guard body.noiseMultiplier >= 0.1, body.noiseMultiplier <= 1_000 else { throw DomainError.invalid("noise_multiplier", "must be 0.1 to 1000") }
        guard (1...10_000_000).contains(body.steps) else { throw DomainError.invalid("steps", "must be 1 to 10000000") }
        guard body.delta > 0, body.delta < 1 else { throw DomainError.invalid("delta", "must be between 0 and 1") }
        let rdp = RDP.sampledGaussian(sampleRate: body.sampleRate, noiseMultiplier: body.noiseMultiplier, steps: body.steps)
        let epsilon = RDP.epsilon(orders: RDP.defaultOrders, rdp: rdp, delta: body.delta).epsilon
        let description = body.description.map { String($0.prefix(200)) }
        let (id, _) = try await services.store.write { database -> (id: String, remaining: PrivacyLedger.Spend) in
            let charged = try PrivacyLedger.charge(.init(dataset: dataset, mechanism: body.mechanism, accountant: "rdp", epsilon: epsilon,
                                                         delta: body.delta, releaseID: nil, description: description),
                                                   id: services.ids.next(.privacyCharge), limits: limits(services),
                                                   now: call.now, in: database)
            try AuditLog.append(call.event("privacy.charge", detail: "dataset=\(dataset),epsilon=\(epsilon)"), to: database)
            return charged
        }
        return (id, epsilon)
    }
}
