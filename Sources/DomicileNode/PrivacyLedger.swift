import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// The privacy budget ledger: every release and external charge of a
/// dataset, per period. A charge is inserted in the same transaction as
/// its release, so nothing is returned before its cost is durable; over
/// budget, the transaction is refused and nothing is released.
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

    struct Spend: Sendable, Equatable {
        var epsilon = 0.0
        var delta = 0.0

        /// Whether a charge of (ε, δ) on top of this spend stays within
        /// `limit`, up to a relative 1e-9 (ten charges of ε 0.1 fit a budget of 1).
        func admits(epsilon: Double, delta: Double, within limit: (epsilon: Double, delta: Double)) -> Bool {
            self.epsilon + epsilon <= limit.epsilon * (1 + 1e-9) && self.delta + delta <= limit.delta * (1 + 1e-9)
        }
    }

    struct Limits: Sendable {
        let epsilon: Double
        let delta: Double
        let period: NodeConfiguration.PrivacyPeriod
    }

    static func spend(of dataset: Name, period: String, in database: Database) throws -> Spend {
        try database.fetchOne("""
            SELECT coalesce(sum(epsilon), 0), coalesce(sum(delta), 0) FROM privacy_charges WHERE dataset = ? AND period = ?
            """, [dataset.rawValue, period]) { Spend(epsilon: $0.double(0), delta: $0.double(1)) } ?? Spend()
    }

    /// Every dataset charged in `period`, with its spend.
    static func spends(period: String, in database: Database) throws -> [(String, Spend)] {
        try database.fetchAll("""
            SELECT dataset, sum(epsilon), sum(delta) FROM privacy_charges WHERE period = ? GROUP BY dataset ORDER BY dataset
            """, [period]) { ($0.text(0), Spend(epsilon: $0.double(1), delta: $0.double(2))) }
    }

    /// Records `charge` if the dataset's budget for the period holds it;
    /// else throws 403 `budget_exhausted` (the caller's transaction rolls
    /// back). Returns the spend after the charge and its id.
    static func charge(_ charge: Charge, limits: Limits, now: Timestamp, in database: Database) throws -> (id: String, spend: Spend) {
        let period = limits.period.key(at: now)
        var spend = try spend(of: charge.dataset, period: period, in: database)
        guard spend.admits(epsilon: charge.epsilon, delta: charge.delta, within: (limits.epsilon, limits.delta)) else {
            throw HTTPError(status: 403, code: "budget_exhausted",
                            detail: "dataset \(charge.dataset) has ε \(format(limits.epsilon - spend.epsilon)) and "
                                + "δ \(format(limits.delta - spend.delta)) left this \(limits.period.rawValue); nothing was released",
                            extensions: ["epsilon_remaining": .number(max(0, limits.epsilon - spend.epsilon)),
                                         "delta_remaining": .number(max(0, limits.delta - spend.delta))])
        }
        let id = "ch_" + Hex.encode(SecureRandom.bytes(12))
        try database.execute("""
            INSERT INTO privacy_charges (charge_id, dataset, period, mechanism, accountant, epsilon, delta, release_id, description, charged_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [id, charge.dataset.rawValue, period, charge.mechanism, charge.accountant, charge.epsilon, charge.delta, charge.releaseID,
                  charge.description, now.milliseconds])
        spend.epsilon += charge.epsilon
        spend.delta += charge.delta
        return (id, spend)
    }

    static func format(_ value: Double) -> String {
        let clamped = max(0, value)
        return clamped == 0 || clamped >= 0.001 ? String(format: "%.4g", clamped) : String(format: "%.2e", clamped)
    }
}
