import DomicileModel
import DomicilePrivacy

/// In a region with a log, the leader asks again, on a schedule, for the
/// confirmations an erasure's region ack still waits for — a member that was
/// down, paused or cut off when the erasure ran, or the erasure's leader
/// lost before it asked — and records the region's ack once every member
/// has confirmed (docs/DECISIONS.md, "Erasure in a region with a log").
final class ErasureConfirmations: Sendable {
    static let intervalMilliseconds: Int64 = 5_000
    /// Requests asked about per round, oldest first.
    static let batchSize = 64

    private let services: NodeServices
    private let schedule = PeriodicTask()

    init(services: NodeServices) { self.services = services }

    func start() {
        let services = self.services
        services.erasureConfirmations.withLock { $0 = self }
        schedule.start(everyMilliseconds: Self.intervalMilliseconds) {
            guard let log = services.regionLog.value, log.isServingLeader else { return }
            do { _ = try await Self.confirmPending(services, log: log) } catch {
                services.logger.warning("erasure confirmations failed", ["error": .string("\(error)")])
            }
        }
    }

    /// Runs a round now: an erasure waits for this region's confirmations.
    func wake() { schedule.wake() }

    func stop() async { await schedule.stop() }

    /// One round: for each pending request erased here that waits for this
    /// region's ack, asks the members and records the ack if all confirm.
    /// Returns how many acks were recorded.
    @discardableResult
    static func confirmPending(_ services: NodeServices, log: RegionLog) async throws -> Int {
        let region = services.region
        let waiting = try services.store.read { database in
            try ErasureRecords.awaitingAck(of: region, limit: batchSize, in: database).compactMap { request in
                try request.signed.map { ($0, try ErasureRecords.localCounts(of: request.erasureID, in: database)) }
            }
        }
        guard !waiting.isEmpty else { return 0 }
        let walTruncated = await ErasureService.truncateWAL(services)
        var recorded = 0
        for (signed, counts) in waiting {
            guard let ack = await RegionErasure.regionAck(for: signed, counts: counts, walTruncated: walTruncated,
                                                          appliedIndex: log.appliedIndex, log: log, services: services) else { continue }
            let request = try await services.store.write { database in
                try ErasureRecords.record(ack, here: services.region, completer: services.configuration.node.rawValue, key: services.keys.signing,
                                          now: max(ack.erasedAt, services.clock.now()), in: database)
            }
            services.logger.info("erasure confirmed by every node of the region", [
                "erasure_id": .string(signed.erasureID), "status": .string(request.status.rawValue)])
            recorded += 1
        }
        // An ack for another region's request leaves through the federation.
        if recorded > 0 { services.federation.value?.wake() }
        return recorded
    }
}
