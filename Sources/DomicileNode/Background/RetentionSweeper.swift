import DomicileModel
import DomicileStorage

/// Deletes, on a schedule, feature values past their TTL and consent grants
/// past their expiry (with the data they covered). Work is done in bounded
/// batches, each one transaction carrying its own audit record (a count,
/// principal `system`), so the writer is never held for long.
final class RetentionSweeper: Sendable {
    static let batchSize = 1_000

    struct Totals: Sendable, Equatable {
        var expiredFeatures = 0
        var expiredGrants = 0
        var purgedFeatures = 0
        var purgedVectors = 0
    }

    private let services: NodeServices
    private let schedule = PeriodicTask()

    init(services: NodeServices) { self.services = services }

    func start() {
        let services = self.services
        schedule.start(everyMilliseconds: Int64(services.configuration.limits.retentionSweepIntervalMilliseconds)) {
            // In a region with a log the leader sweeps for every node: its deletions are entries.
            if let log = services.regionLog.value, !log.isServingLeader { return }
            do { _ = try await Self.sweep(services, now: services.clock.now()) } catch {
                services.logger.error("retention sweep failed", ["error": .string("\(error)")])
            }
        }
    }

    func stop() async { await schedule.stop() }

    /// One full sweep: batches until nothing expired is left.
    @discardableResult
    static func sweep(_ services: NodeServices, now: Timestamp) async throws -> Totals {
        var totals = Totals()
        while true {
            let batch = try await services.store.write { database -> Totals in
                let (grants, removed) = try ConsentEnforcement.endExpiredGrants(now: now, limit: batchSize, services: services, in: database)
                let features = try FeatureRecords.deleteExpired(now: now, limit: batchSize, in: database)
                let batch = Totals(expiredFeatures: features, expiredGrants: grants, purgedFeatures: removed.features,
                                   purgedVectors: removed.vectors)
                if batch != Totals() {
                    try AuditLog.append(AuditEvent(at: now, principal: "system", action: "retention.sweep", outcome: "ok",
                                                   detail: "expired_features=\(features),expired_grants=\(grants),\(removed.auditDetail)"),
                                        to: database)
                }
                return batch
            }
            totals.expiredFeatures += batch.expiredFeatures
            totals.expiredGrants += batch.expiredGrants
            totals.purgedFeatures += batch.purgedFeatures
            totals.purgedVectors += batch.purgedVectors
            services.metrics.increment("domicile_retention_deleted_total", labels: ["kind": "expired_features"], by: batch.expiredFeatures)
            services.metrics.increment("domicile_retention_deleted_total", labels: ["kind": "expired_grants"], by: batch.expiredGrants)
            services.metrics.increment("domicile_retention_deleted_total", labels: ["kind": "purged_features"], by: batch.purgedFeatures)
            services.metrics.increment("domicile_retention_deleted_total", labels: ["kind": "purged_vectors"], by: batch.purgedVectors)
            if batch != Totals() { services.metrics.countAudit(action: "retention.sweep", outcome: "ok") }
            if batch.purgedVectors > 0 { services.exportsRetracted() }
            if batch.expiredFeatures < batchSize && batch.expiredGrants < batchSize { return totals }
        }
    }
}
