import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import Foundation

/// The data an aggregate reads, and the releases it leaves.
enum AggregateData {
    /// One contribution per subject: its value of the feature (numbers or
    /// categories), or, for a count without a feature, a 1.
    struct Contributions: Sendable {
        var numbers: [Double] = []
        var strings: [String] = []
    }

    /// The contributions of the subjects of this region the consent gate
    /// lets serve `query.purpose` now (its SQL filter). A feature contributes only
    /// while its value is live (within its TTL; revoked purposes have
    /// purged theirs). The primary key (pid, feature) bounds each subject
    /// to one value.
    static func contributions(_ query: AggregateService.Query, services: NodeServices, now: Timestamp,
                              in database: Database) throws -> Contributions {
        let (covered, coveredArguments) = services.consentGate.sqlFilter(query.purpose, pid: "s.pid", now: now)
        var contributions = Contributions()
        guard let feature = query.feature else {
            let count = try database.fetchOne("SELECT count(*) FROM subjects s WHERE \(covered)", coveredArguments) { $0.int64(0) } ?? 0
            contributions.numbers = [Double](repeating: 1, count: Int(count))
            return contributions
        }
        let arguments: [any DatabaseValueConvertible] = [feature.rawValue, now.milliseconds] + coveredArguments
        // The wrapped subject key comes with the row: one statement for the whole scan.
        let rows = try database.fetchAll("""
            SELECT s.pid, s.wrapped_key, f.sealed_value FROM features f JOIN subjects s ON s.pid = f.pid
            WHERE f.name = ? AND f.expires_at > ? AND \(covered)
            """, arguments) { ($0.text(0), $0.blob(1), $0.blob(2)) }
        for (pidText, wrapped, sealed) in rows {
            let pid = try StorageError.decoded(try? PID(parsing: pidText), table: "subjects", column: "pid")
            // A key whose wrapping key was destroyed belongs to an erased subject.
            guard let key = try services.keys.subjectKey(wrapped: wrapped, for: pid) else { continue }
            let plain = try Envelope.open(sealed, key: key, associatedData: FeatureRecords.associatedData(pid, feature))
            let value = try StorageError.decoded(FeatureValue(encoded: plain), table: "features", column: "sealed_value")
            switch value {
            case .number(let number): contributions.numbers.append(number)
            case .string(let text): contributions.strings.append(text)
            case .bool(let flag): contributions.numbers.append(flag ? 1 : 0)
            }
        }
        return contributions
    }

    static func insert(_ release: Release, in database: Database) throws {
        try database.execute("""
            INSERT INTO aggregate_releases (release_id, name, region, kind, dataset, result, mechanism, epsilon, delta, noise_scale, released_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [release.releaseID, release.name, release.region, release.kind, release.dataset, release.result.encoded, release.mechanism,
                  release.epsilon, release.delta, release.noiseScale, release.releasedAt.milliseconds])
    }

    /// The last release of `name` made in `region` (releases of other
    /// regions arrive through the federation); of releases in the same
    /// millisecond, the greatest release_id (not the last inserted: rowids
    /// are each node's own).
    static func latest(_ name: Name, of region: RegionID, in database: Database) throws -> Release? {
        try releases("WHERE name = ? AND region = ? ORDER BY released_at DESC, release_id DESC LIMIT 1", [name.rawValue, region.rawValue],
                     in: database).first
    }

    /// The last release of `name` of each region that released it.
    static func latestPerRegion(_ name: Name, in database: Database) throws -> [Release] {
        try releases("""
            WHERE name = ? AND release_id = (SELECT r.release_id FROM aggregate_releases r WHERE r.name = aggregate_releases.name
                AND r.region = aggregate_releases.region ORDER BY r.released_at DESC, r.release_id DESC LIMIT 1)
            ORDER BY region
            """, [name.rawValue], in: database)
    }

    /// This region's releases that the federation has not carried yet (see
    /// `FederationSync`), oldest first.
    static func unpublished(of region: RegionID, limit: Int, in database: Database) throws -> [Release] {
        try releases("""
            WHERE region = ? AND release_id NOT IN (SELECT record_id FROM federation_entries WHERE origin = ? AND record_id IS NOT NULL)
            ORDER BY released_at, release_id LIMIT ?
            """, [region.rawValue, region.rawValue, limit], in: database)
    }

    private static func releases(_ clause: String, _ arguments: [any DatabaseValueConvertible], in database: Database) throws -> [Release] {
        try database.fetchAll("""
            SELECT release_id, region, name, kind, dataset, result, mechanism, epsilon, delta, noise_scale, released_at
            FROM aggregate_releases \(clause)
            """, arguments) { row throws(StorageError) -> Release in
            // A release that does not decode is corrupt, never silently "no release".
            guard let result = AggregateResult(encoded: row.text(5)) else {
                throw StorageError.corrupt(table: "aggregate_releases", column: "result")
            }
            return Release(releaseID: row.text(0), region: row.text(1), name: row.text(2), kind: row.text(3), dataset: row.text(4),
                           result: result, mechanism: row.text(6), epsilon: row.double(7), delta: row.double(8),
                           noiseScale: row.double(9), releasedAt: Timestamp(milliseconds: row.int64(10)))
        }
    }
}
