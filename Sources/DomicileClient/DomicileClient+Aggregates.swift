/// `POST /v1/aggregates`: what to compute over the region's subjects, and the noise (API.md, "Aggregates and privacy budget").
public struct AggregateRequest: Encodable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable { case count, sum, mean, histogram }
    public enum Mechanism: String, Codable, Sendable { case laplace, gaussian }

    public var name: String
    public var kind: Kind
    public var feature: String?
    /// Histogram categories.
    public var categories: [String]?
    /// `[low, high]` for sum and mean.
    public var clamp: [Double]?
    public var mechanism: Mechanism?
    public var epsilon: Double
    /// Gaussian only.
    public var delta: Double?
    /// The label the spend is reported under (`crm` by default); it never adds budget.
    public var dataset: String?
    /// The purpose whose consenting subjects are counted (`analytics` by default).
    public var purpose: String?

    public init(name: String, kind: Kind, feature: String? = nil, categories: [String]? = nil, clamp: [Double]? = nil,
                mechanism: Mechanism? = nil, epsilon: Double, delta: Double? = nil, dataset: String? = nil, purpose: String? = nil) {
        self.name = name
        self.kind = kind
        self.feature = feature
        self.categories = categories
        self.clamp = clamp
        self.mechanism = mechanism
        self.epsilon = epsilon
        self.delta = delta
        self.dataset = dataset
        self.purpose = purpose
    }
}

/// An (ε, δ) amount: a limit, a spend or a remainder.
public struct PrivacySpend: Decodable, Sendable, Hashable {
    public let epsilon: Double
    public let delta: Double
}

/// A region's differentially private release.
public struct AggregateRelease: Decodable, Sendable, Hashable {
    public let releaseID: String
    public let region: String
    public let name: String
    public let kind: String
    public let dataset: String?
    /// Count, sum and mean.
    public let value: Double?
    /// Histograms: category → noised count.
    public let values: [String: Double]?
    public let mechanism: String
    public let epsilon: Double
    public let delta: Double
    /// The noise's standard deviation.
    public let noiseScale: Double
    public let releasedAt: String
    /// What the release's label may still spend this period (only on the release and the region's own latest).
    public let budgetRemaining: PrivacySpend?

    enum CodingKeys: String, CodingKey {
        case releaseID = "release_id", region, name, kind, dataset, value, values, mechanism, epsilon, delta
        case noiseScale = "noise_scale", releasedAt = "released_at", budgetRemaining = "budget_remaining"
    }
}

/// `GET /v1/aggregates/{name}/global`: every region's latest release and their combination.
public struct GlobalAggregate: Decodable, Sendable, Hashable {
    public struct Interval: Decodable, Sendable, Hashable {
        public let level: Double
        public let halfWidth: Double?
        public let low: Double?
        public let high: Double?

        enum CodingKeys: String, CodingKey { case level, halfWidth = "half_width", low, high }
    }

    public let name: String
    public let kind: String
    /// `sum` or `unweighted_mean`.
    public let combinedAs: String?
    public let value: Double?
    public let values: [String: Double]?
    /// √Σσᵢ².
    public let noiseScale: Double
    public let interval: Interval
    /// The largest over the regions (their subjects are disjoint).
    public let epsilon: Double
    public let delta: Double?
    /// Why ε is the largest rather than the sum: `disjoint_subjects`.
    public let epsilonAssumption: String?
    public let regions: [String: AggregateRelease]
    public let missingRegions: [String]
    /// Regions whose release is of another kind, set aside.
    public let mismatchedRegions: [String]?

    enum CodingKeys: String, CodingKey {
        case name, kind, combinedAs = "combined_as", value, values, noiseScale = "noise_scale", interval, epsilon, delta
        case epsilonAssumption = "epsilon_assumption", regions
        case missingRegions = "missing_regions", mismatchedRegions = "mismatched_regions"
    }
}

/// `GET /v1/privacy-budget`: the region's limit and spend for the period, and per dataset label.
public struct PrivacyBudget: Decodable, Sendable, Hashable {
    public struct Dataset: Decodable, Sendable, Hashable {
        public let dataset: String
        public let epsilonSpent: Double
        public let deltaSpent: Double
        public let epsilonRemaining: Double
        public let deltaRemaining: Double
        /// An admin's cap on this label, below the region's limit.
        public let cap: PrivacySpend?

        enum CodingKeys: String, CodingKey {
            case dataset, epsilonSpent = "epsilon_spent", deltaSpent = "delta_spent", epsilonRemaining = "epsilon_remaining"
            case deltaRemaining = "delta_remaining", cap
        }
    }

    public let period: String
    public let periodKind: String?
    public let limits: PrivacySpend
    public let spent: PrivacySpend
    public let remaining: PrivacySpend
    public let datasets: [Dataset]

    enum CodingKeys: String, CodingKey { case period, periodKind = "period_kind", limits, spent, remaining, datasets }
}

/// `POST /v1/privacy-budget/charges`: an external DP computation (DP-SGD) charged to the ledger.
public struct BudgetChargeRequest: Encodable, Sendable, Hashable {
    public var dataset: String
    /// `subsampled_gaussian`.
    public var mechanism: String
    public var sampleRate: Double
    public var noiseMultiplier: Double
    public var steps: Int
    public var delta: Double
    public var description: String?

    enum CodingKeys: String, CodingKey {
        case dataset, mechanism, sampleRate = "sample_rate", noiseMultiplier = "noise_multiplier", steps, delta, description
    }

    public init(dataset: String, mechanism: String = "subsampled_gaussian", sampleRate: Double, noiseMultiplier: Double, steps: Int,
                delta: Double, description: String? = nil) {
        self.dataset = dataset
        self.mechanism = mechanism
        self.sampleRate = sampleRate
        self.noiseMultiplier = noiseMultiplier
        self.steps = steps
        self.delta = delta
        self.description = description
    }
}

public struct BudgetCharge: Decodable, Sendable, Hashable {
    public let chargeID: String
    /// The ε the accountant computed for the charge.
    public let epsilon: Double
    public let delta: Double
    public let accountant: String

    enum CodingKeys: String, CodingKey { case chargeID = "charge_id", epsilon, delta, accountant }
}

extension DomicileClient {
    /// Computes, noises, charges and releases an aggregate of the node's
    /// region. `budget_exhausted` (with `epsilonRemaining`) when over
    /// budget; nothing is released. Never sent twice: each release spends.
    public func releaseAggregate(_ request: AggregateRequest) async throws -> AggregateRelease {
        try await send(Call("POST", "/v1/aggregates", idempotent: false).json(request))
    }

    /// The region's latest release of `name`.
    public func aggregate(_ name: String) async throws -> AggregateRelease {
        try await send(Call("GET", "/v1/aggregates/\(Self.escaped(name))"))
    }

    /// Every region's latest release of `name`, combined.
    public func globalAggregate(_ name: String) async throws -> GlobalAggregate {
        try await send(Call("GET", "/v1/aggregates/\(Self.escaped(name))/global"))
    }

    /// The region's release (or with `global`, every region's and the
    /// combination) as CSV for a BI tool (docs/HTTP.md, "Aggregates as CSV").
    public func aggregateCSV(_ name: String, global: Bool = false) async throws -> String {
        var call = Call("GET", "/v1/aggregates/\(Self.escaped(name))" + (global ? "/global" : ""))
        call.accept = "text/csv"
        return String(decoding: try await send(call).body, as: UTF8.self)
    }

    public func privacyBudget() async throws -> PrivacyBudget {
        try await send(Call("GET", "/v1/privacy-budget"))
    }

    /// Charges an external computation; `budget_exhausted` if it does not fit. Never sent twice.
    public func chargeBudget(_ request: BudgetChargeRequest) async throws -> BudgetCharge {
        try await send(Call("POST", "/v1/privacy-budget/charges", idempotent: false).json(request))
    }
}
