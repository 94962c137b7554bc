import DomicileModel
import DomicileStorage

/// The embedding side of the ledger (`embedding_charges`): every noised
/// export charged to its subject's budget for the period, as
/// `GET /v1/privacy-budget` shows it — in total, per collection, and for one
/// subject with `?pid=`.
enum EmbeddingLedger {
    struct CollectionSpend: Sendable {
        let collection: String
        let exports: Int
        let spent: PrivacyLedger.Spend
    }

    struct Standing: Sendable {
        let exports: Int
        let subjects: Int
        /// The most any one subject has spent in the period.
        let largestSubjectSpend: PrivacyLedger.Spend
        /// Vector versions refused in the period because their subject's budget was spent.
        let refused: Int
        let collections: [CollectionSpend]
    }

    struct SubjectCharge: Sendable {
        let collection: String
        let epsilon: Double
        let delta: Double
        let chargedAt: Timestamp
    }

    static func standing(period: String, in database: Database) throws -> Standing {
        let collections = try database.fetchAll("""
            SELECT collection, count(*), sum(epsilon), sum(delta) FROM embedding_charges WHERE period = ? GROUP BY collection ORDER BY collection
            """, [period]) { CollectionSpend(collection: $0.text(0), exports: Int($0.int64(1)), spent: .init(epsilon: $0.double(2), delta: $0.double(3))) }
        let subjects = try database.fetchOne("""
            SELECT count(*), coalesce(max(e), 0), coalesce(max(d), 0)
            FROM (SELECT sum(epsilon) AS e, sum(delta) AS d FROM embedding_charges WHERE period = ? GROUP BY pid)
            """, [period]) { (Int($0.int64(0)), PrivacyLedger.Spend(epsilon: $0.double(1), delta: $0.double(2))) } ?? (0, .init())
        let refused = try database.fetchOne("SELECT count(*) FROM embedding_exports WHERE skipped_period = ?", [period]) { Int($0.int64(0)) } ?? 0
        return Standing(exports: collections.reduce(0) { $0 + $1.exports }, subjects: subjects.0, largestSubjectSpend: subjects.1,
                        refused: refused, collections: collections)
    }

    /// One subject's charges in the period, oldest first.
    static func charges(of pid: PID, period: String, in database: Database) throws -> [SubjectCharge] {
        try database.fetchAll("""
            SELECT collection, epsilon, delta, charged_at FROM embedding_charges WHERE pid = ? AND period = ? ORDER BY seq
            """, [pid.rawValue, period]) {
            SubjectCharge(collection: $0.text(0), epsilon: $0.double(1), delta: $0.double(2), chargedAt: Timestamp(milliseconds: $0.int64(3)))
        }
    }
}
