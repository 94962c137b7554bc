import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// The privacy budget ledger: every release and external charge, per
/// period. The budget is the region's: what one subject can lose is bounded
/// by the sum over every release that touches the region's subjects, so
/// every charge spends from one limit whatever `dataset` label it carries.
/// Labels report the spend, and an admin may cap a label below the region's
/// limit (config `limits.privacy_label_caps`); a cap never adds budget.
///
/// Charges compose by basic composition: the ε and the δ of every charge in
/// the period add (pure ε for Laplace; (ε, δ) of the analytic Gaussian or
/// of the RDP accountant for the others), which is sound for any mix.
///
/// A charge is inserted in the same transaction as its release, so nothing
/// is returned before its cost is durable; over budget, the transaction is
/// refused and nothing is released.
enum PrivacyLedger {
    struct Charge: Sendable {
        let dataset: Name
        let mechanism: String
        let accountant: String
        let epsilon: Double
        let delta: Double
        let releaseID: String?
        let description: String?
    }

    /// An amount of privacy loss: a spend, a limit or what is left of one.
    struct Spend: Sendable, Equatable {
        var epsilon = 0.0
        var delta = 0.0

        /// Whether a charge of (ε, δ) on top of this spend stays within
        /// `limit`, up to a relative 1e-9 (ten charges of ε 0.1 fit a budget of 1).
        func admits(epsilon: Double, delta: Double, within limit: (epsilon: Double, delta: Double)) -> Bool {
            self.epsilon + epsilon <= limit.epsilon * (1 + 1e-9) && self.delta + delta <= limit.delta * (1 + 1e-9)
        }

        func admits(_ charge: Spend, within limit: Spend) -> Bool {
            admits(epsilon: charge.epsilon, delta: charge.delta, within: (limit.epsilon, limit.delta))
        }

        /// What is left of `limit` after this spend (never below 0).
        func remaining(of limit: Spend) -> Spend {
            Spend(epsilon: max(0, limit.epsilon - epsilon), delta: max(0, limit.delta - delta))
        }

        static func + (lhs: Spend, rhs: Spend) -> Spend {
            Spend(epsilon: lhs.epsilon + rhs.epsilon, delta: lhs.delta + rhs.delta)
        }

        /// The smaller ε and the smaller δ of both.
        static func least(_ lhs: Spend, _ rhs: Spend) -> Spend {
            Spend(epsilon: min(lhs.epsilon, rhs.epsilon), delta: min(lhs.delta, rhs.delta))
        }
    }

    struct Limits: Sendable {
        /// The region's budget per period, over every label.
        let region: Spend
        let period: NodeConfiguration.PrivacyPeriod
        /// Labels an admin capped below the region's limit.
        let labelCaps: [Name: Spend]

        init(_ limits: NodeConfiguration.Limits) {
            region = Spend(epsilon: limits.privacyEpsilonPerPeriod, delta: limits.privacyDeltaPerPeriod)
            period = limits.privacyPeriod
            labelCaps = limits.privacyLabelCaps.mapValues { Spend(epsilon: $0.epsilon, delta: $0.delta) }
        }
    }

    /// The spend of a period: the region's and each label's.
    struct Standing: Sendable {
        let period: String
        let region: Spend
        let labels: [Name: Spend]

        func label(_ dataset: Name) -> Spend { labels[dataset] ?? Spend() }

        /// What `dataset` may still spend: the region's remainder, and its cap's if it has one.
        func remaining(for dataset: Name, limits: Limits) -> Spend {
            let regionLeft = region.remaining(of: limits.region)
            guard let cap = limits.labelCaps[dataset] else { return regionLeft }
            return .least(regionLeft, label(dataset).remaining(of: cap))
        }
    }

    static func standing(period: String, in database: Database) throws -> Standing {
        let rows = try database.fetchAll("""
            SELECT dataset, sum(epsilon), sum(delta) FROM privacy_charges WHERE period = ? GROUP BY dataset
            """, [period]) { (try Name($0.text(0), what: "stored dataset label"), Spend(epsilon: $0.double(1), delta: $0.double(2))) }
        return Standing(period: period, region: rows.reduce(Spend()) { $0 + $1.1 }, labels: Dictionary(uniqueKeysWithValues: rows))
    }

    /// Records `charge` as `chargeID` if the region's budget for the period,
    /// and the cap of its label if it has one, hold it; else throws 403
    /// `budget_exhausted` (the caller's transaction rolls back). Returns its
    /// id and what its label may still spend after it.
    static func charge(_ charge: Charge, id: String, limits: Limits, now: Timestamp,
                       in database: Database) throws -> (id: String, remaining: Spend) {
        let period = limits.period.key(at: now)
        let standing = try standing(period: period, in: database)
        let cost = Spend(epsilon: charge.epsilon, delta: charge.delta)
        let remaining = standing.remaining(for: charge.dataset, limits: limits)
        guard standing.region.admits(cost, within: limits.region) else {
            throw exhausted("the region's budget", remaining: remaining, limits: limits)
        }
        if let cap = limits.labelCaps[charge.dataset], !standing.label(charge.dataset).admits(cost, within: cap) {
            throw exhausted("the cap of dataset \(charge.dataset)", remaining: remaining, limits: limits)
        }
        try database.execute("""
            INSERT INTO privacy_charges (charge_id, dataset, period, mechanism, accountant, epsilon, delta, release_id, description, charged_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [id, charge.dataset.rawValue, period, charge.mechanism, charge.accountant, charge.epsilon, charge.delta, charge.releaseID,
                  charge.description, now.milliseconds])
        let after = Standing(period: period, region: standing.region + cost,
                             labels: standing.labels.merging([charge.dataset: standing.label(charge.dataset) + cost]) { $1 })
        return (id, after.remaining(for: charge.dataset, limits: limits))
    }

    private static func exhausted(_ budget: String, remaining: Spend, limits: Limits) -> DomainError {
        DomainError(.refused, code: "budget_exhausted",
                  detail: "\(budget) has ε \(format(remaining.epsilon)) and δ \(format(remaining.delta)) left this "
                      + "\(limits.period.rawValue); nothing was released",
                  extensions: ["epsilon_remaining": .number(remaining.epsilon), "delta_remaining": .number(remaining.delta)])
    }

    static func format(_ value: Double) -> String {
        let clamped = max(0, value)
        return clamped == 0 || clamped >= 0.001 ? String(format: "%.4g", clamped) : String(format: "%.2e", clamped)
    }
}
