import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// The local part of the erasure cascade (DESIGN.md section 9): the request
/// is signed and recorded and the subject erased here, in one transaction;
/// then the WAL is checkpointed and truncated, and the region's nodes ack.
/// Without a region log each node holds only what it was sent, so each acks
/// for itself (scope `node`), asked by the origin. With one, the erasure is
/// an entry every node applies: once every member of the log has confirmed
/// that it applied it and truncated its WAL, the leader signs the region's
/// one ack (scope `region`); a member that does not answer keeps the
/// request pending, and `ErasureConfirmations` asks again. The request
/// completes, and the node recording the last ack signs the completion,
/// once every expected region has acked (docs/DECISIONS.md, "Erasure",
/// "Erasure in a region with a log"). Until the federation carries erasure
/// signals, a request expects this region only, and a pid of another region
/// is answered 421.
enum ErasureService {
    /// Whom the request is about, once validated.
    enum Target: Sendable {
        case pid(PID)
        case identifier(Identifier)
        /// Another region's intent, as it arrives: the pids it lists that
        /// live here, and every subject here whose link has its hash.
        case intent(linkHash: [UInt8], pids: [PID])
    }

    /// Erases the subject `target` names: signs and records the request,
    /// erases here, asks the region's other nodes, and records every ack.
    /// Returns the request as it then stands.
    static func request(_ target: Target, jurisdiction named: String?, call: CallContext) async throws -> ErasureRequest {
        let services = call.services
        if let named, ErasureRecords.deadlineDays[named] == nil {
            throw DomainError.invalid("jurisdiction", "must be one of \(ErasureRecords.deadlineDays.keys.sorted().joined(separator: ", "))")
        }
        let jurisdiction = named ?? services.policy.jurisdiction(of: services.region) ?? "default"
        var expectedNodes = federationRegions(services)
        if case .pid(let pid) = target, pid.region != services.region, expectedNodes[pid.region] == nil {
            // The pid's region is not in this node's view of the federation: the cascade could not reach it.
            throw DomainError.misdirected(home: pid.region, nodes: services.liveNodes(in: pid.region))
        }
        expectedNodes[services.region] = try regionNodes(services)
        let signed = SignedErasureRequest.signed(
            erasureID: services.ids.next(.erasure), requestedAt: call.now,
            dueAt: call.now.adding(seconds: (ErasureRecords.deadlineDays[jurisdiction] ?? ErasureRecords.defaultDeadlineDays) * 86_400),
            jurisdiction: jurisdiction, originRegion: services.region, originNode: services.configuration.node.rawValue,
            policyVersion: Int64(services.policy.version), linkHash: try linkHash(of: target, services),
            expectedNodes: expectedNodes, key: services.keys.signing)
        let counts = try await recordAndErase(signed, target: target, call)
        // An ack is signed once the WAL no longer holds what was erased, so it can say so.
        let walTruncated = await truncateWAL(services)
        let acks: [ErasureAck]
        if let log = services.regionLog.value {
            let regionAck = await RegionErasure.regionAck(for: signed, counts: counts, walTruncated: walTruncated,
                                                          appliedIndex: log.appliedIndex, log: log, services: services)
            acks = regionAck.map { [$0] } ?? []
        } else {
            let ack = ErasureAck.signed(for: signed, region: services.region, node: signed.originNode,
                                        erasedAt: max(call.now, services.clock.now()), counts: counts, walTruncated: walTruncated,
                                        policyVersion: Int64(services.policy.version), key: services.keys.signing)
            acks = [ack] + (await RegionErasure.ask(peersOf: signed, target: target, services: services))
        }
        let recorded = try await services.store.write { database in
            var recorded = try ErasureRecords.find(signed.erasureID, in: database)!
            for ack in acks {
                recorded = try ErasureRecords.record(ack, here: services.region, completer: services.configuration.node.rawValue, key: services.keys.signing,
                                                     now: max(ack.erasedAt, services.clock.now()), in: database)
            }
            try AuditLog.append(call.event("erasure.request", outcome: recorded.status.rawValue,
                                              detail: "erasure_id=\(signed.erasureID),subjects=\(counts["subjects"] ?? 0)"), to: database)
            return recorded
        }
        services.metrics.countAudit(action: "erasure.request", outcome: recorded.status.rawValue)
        if recorded.status == .pending { services.federation.value?.wake() }
        return recorded
    }

    /// Erases here what another region's intent names, through this
    /// region's log, and records the request (pending in every expected
    /// region) with what it erased, in the same transaction; then truncates
    /// the WAL. The region's ack follows once every node of the region has
    /// confirmed (`ErasureConfirmations`). Nothing happens if the request is
    /// already recorded here: an intent is acted on once.
    static func erase(forIntentOf signed: SignedErasureRequest, pids: [PID], services: NodeServices) async throws {
        guard try services.store.read({ try ErasureRecords.find(signed.erasureID, in: $0) }) == nil else { return }
        _ = try await erase(.intent(linkHash: signed.linkHash, pids: pids), services: services, event: { pid in
            AuditEvent(at: services.clock.now(), principal: "region:\(signed.originRegion)", action: "erasure.erase", pid: pid.rawValue,
                       outcome: "erased", detail: "erasure_id=\(signed.erasureID)")
        }, then: { erasedPIDs, counts, database in
            guard try ErasureRecords.find(signed.erasureID, in: database) == nil else { return }
            try ErasureRecords.insert(signed, requestedBy: "region:\(signed.originRegion)", erasedPIDs: erasedPIDs, counts: counts,
                                      in: database)
        })
        _ = await truncateWAL(services)
        services.metrics.countAudit(action: "erasure.erase", outcome: "erased")
    }

    /// The other regions of the federation as this node's gossip knows them
    /// (any state: a region that is down is still expected, and the request
    /// waits for it), each with the names of its known nodes. Without
    /// gossip, none: the request expects this region alone.
    static func federationRegions(_ services: NodeServices) -> [RegionID: [String]] {
        var regions: [RegionID: [String]] = [:]
        for member in services.gossip.value?.members(of: .federation) ?? [] where member.identity.region != services.region {
            guard services.policy.regions[member.identity.region] != nil else { continue }
            regions[member.identity.region, default: []].append(member.name.rawValue)
        }
        return regions.mapValues { Array(Set($0)).sorted() }
    }

    static func linkHash(of target: Target, _ services: NodeServices) throws -> [UInt8] {
        try services.store.read { try ErasureRecords.linkHash(of: target, keys: services.keys, in: $0) }
    }

    /// Records the signed request and erases its subjects here, in one
    /// transaction. Returns the rows erased per table (every counted table).
    static func recordAndErase(_ signed: SignedErasureRequest, target: Target, _ call: CallContext) async throws -> [String: Int64] {
        try await erase(target, services: call.services, event: { pid in
            call.event("erasure.erase", pid: pid.rawValue, outcome: "erased", detail: "erasure_id=\(signed.erasureID)")
        }, then: { erasedPIDs, counts, database in
            // A pid of another region is erased there: the intent names it.
            var named = erasedPIDs
            if case .pid(let pid) = target, pid.region != call.services.region { named.append(pid.rawValue) }
            try ErasureRecords.insert(signed, requestedBy: call.principal.name, erasedPIDs: named, counts: counts, in: database)
        })
    }

    /// Erases every subject `target` names on this node, in one transaction
    /// that appends `event` for each subject erased and runs `then` with
    /// their pids and the counts; each erased subject's bucket key is rotated, and the
    /// retired versions are destroyed once it committed (docs/DECISIONS.md,
    /// "Subject keys under bucket keys"). Returns the rows erased per table
    /// (every counted table).
    static func erase(_ target: Target, services: NodeServices, event: @escaping @Sendable (PID) -> AuditEvent,
                      then: @escaping @Sendable ([String], [String: Int64], Database) throws -> Void = { _, _, _ in })
        async throws -> [String: Int64] {
        // The subjects whose vectors left the indexes, to put back should the transaction fail.
        let touched = Locked<[PID]>([])
        do {
            let counts = try await services.store.write { database in
                let pids: [PID]
                switch target {
                case .pid(let pid): pids = pid.region == services.region ? [pid] : []
                case .identifier(let identifier): pids = try ErasureRecords.subjects(matching: identifier, keys: services.keys, in: database)
                case .intent(let linkHash, let named):
                    pids = Array(Set(named.filter { $0.region == services.region }
                                     + (try ErasureRecords.subjects(withLinkHash: linkHash, in: database)))).sorted()
                }
                var counts = Dictionary(uniqueKeysWithValues: ErasureRecords.countedTables.map { ($0, Int64(0)) })
                var erasedPIDs: [String] = []
                for pid in pids {
                    touched.withLock { $0.append(pid) }
                    let erased = try ErasureRecords.eraseSubject(pid, vectors: services.vectors, now: services.clock.now(), in: database)
                    if erased["subjects", default: 0] > 0 { try services.keys.subjects.rotateBucket(of: pid, in: database) }
                    counts.merge(erased, uniquingKeysWith: +)
                    if (erased["subjects"] ?? 0) > 0 || (erased["consent_receipts"] ?? 0) > 0 {
                        erasedPIDs.append(pid.rawValue)
                        try AuditLog.append(event(pid), to: database)
                    }
                }
                try then(erasedPIDs, counts, database)
                return counts
            }
            // The bucket key versions the erasure retired are destroyed before anything acknowledges it.
            try await services.keys.subjects.destroyRetired(services.store)
            return counts
        } catch {
            try? await services.resynchronizeVectors(of: touched.value)
            throw error
        }
    }

    /// The nodes of this region that must ack: this one and every member
    /// the region's gossip pool knows, whatever its state (a dead or departed
    /// node keeps its disk). Without a region log, each node holds only what
    /// it was sent, so none can answer for another (docs/DECISIONS.md,
    /// "Erasure"). A node that has not joined its region yet does not know
    /// them: 503.
    ///
    /// In a region with a log: the members of the log (voters and learners),
    /// which every confirm before the region's one ack is signed
    /// (docs/DECISIONS.md, "Erasure in a region with a log").
    static func regionNodes(_ services: NodeServices) throws -> [String] {
        if let log = services.regionLog.value {
            let status = log.status
            return Set((status.voters + status.learners).map(\.rawValue) + [services.configuration.node.rawValue]).sorted()
        }
        let gossip = services.gossip.value
        if let gossip, !gossip.joined {
            throw DomainError(.unavailable, code: "not_ready", detail: "this node has not joined its region yet, so it cannot name the nodes an erasure must reach")
        }
        let members = gossip?.members(of: .region) ?? []
        let names = members.filter { $0.identity.region == services.region }.map(\.name.rawValue)
        return Array(Set(names + [services.configuration.node.rawValue])).sorted()
    }

    /// Nothing erased may remain in the WAL: checkpoint it into the database
    /// (where secure_delete has zeroed the deleted rows) and truncate it. A
    /// reader pinning old frames can make this fail; it is retried, and a
    /// failure is logged and counted (the erased ciphertexts are unreadable
    /// anyway: their subject key is gone).
    /// The saved graphs go too: they name the erased pids and their
    /// neighbours, sealed under the region's data key, which outlives the
    /// subject's; the saver writes them again within seconds.
    /// Returns whether the WAL was truncated.
    static func truncateWAL(_ services: NodeServices) async -> Bool {
        services.vectors.discardSavedGraphs(GraphSnapshots(services: services))
        for attempt in 1...3 {
            do {
                try await services.store.checkpointAndTruncateWAL()
                return true
            } catch {
                if attempt == 3 {
                    services.metrics.increment("domicile_erasure_checkpoint_failures_total")
                    services.logger.error("erasure checkpoint failed", ["error": .string("\(error)")])
                }
            }
        }
        return false
    }
}
