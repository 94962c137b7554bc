import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// `POST /v1/erasures`, `GET /v1/erasures/{id}`, `GET /v1/erasures`.
///
/// The local part of the erasure cascade (DESIGN.md section 9): the request
/// is signed and recorded and the subject erased here, in one transaction;
/// then the WAL is checkpointed and truncated, and this node signs its ack
/// (scope `node`). The request completes, and its origin signs the
/// completion, once every expected node has acked: a region with other
/// nodes stays pending until they have (docs/DECISIONS.md, "Erasure").
/// Until the federation carries erasure signals, a request expects this
/// region only, and a pid of another region is answered 421.
enum ErasureRoutes {
    struct RequestBody: Decodable, Sendable {
        let pid: String?
        let identifier: IdentifierBody?
        let jurisdiction: String?
    }

    struct Summary: JSONWritable {
        let request: ErasureRequest
        let now: Timestamp
        let withCertificate: Bool

        func write(to json: inout JSONWriter) {
            json.object { json in
                writeMembers(to: &json)
                if withCertificate, let certificate = request.certificate {
                    json.key("certificate")
                    // The certificate's own encoding, the one `domicile erasure verify` reads back (it has
                    // no floating-point member, so encoding cannot fail).
                    json.value(encoded: (try? ErasureRoutes.certificateEncoder.encode(certificate)) ?? Data("null".utf8))
                }
            }
        }

        private func writeMembers(to json: inout JSONWriter) {
            json.member("erasure_id", request.erasureID)
            json.member("status", request.isOverdue(at: now) ? "overdue" : request.status.rawValue)
            json.member("requested_at", request.requestedAt)
            json.member("requested_by", request.requestedBy)
            json.member("origin_region", request.originRegion.rawValue)
            json.member("jurisdiction", request.jurisdiction)
            json.member("due_at", request.dueAt)
            json.member("completed_at", request.completedAt)
            json.key("regions")
            json.object { json in
                for (region, status) in request.regions.sorted(by: { $0.key < $1.key }) {
                    json.key(escaping: region.rawValue)
                    json.value(status)
                }
            }
            json.key("waiting_for")
            json.array(request.regions.filter { $0.value != "erased" }.keys.sorted()) { $0.value($1.rawValue) }
            if let signed = request.signed {
                json.key("expected_nodes")
                NodesJSON(nodes: signed.expectedNodes).write(to: &json)
                json.key("waiting_for_nodes")
                NodesJSON(nodes: request.waitingForNodes).write(to: &json)
            }
        }
    }

    static let certificateEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Region → node names.
    struct NodesJSON: JSONWritable {
        let nodes: [RegionID: [String]]

        func write(to json: inout JSONWriter) {
            json.object { json in
                for (region, names) in nodes.sorted(by: { $0.key < $1.key }) {
                    json.key(escaping: region.rawValue)
                    json.array(names) { $0.value($1) }
                }
            }
        }
    }

    struct List: JSONWritable {
        let requests: [ErasureRequest]
        let now: Timestamp

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("erasures")
                json.array(requests) { Summary(request: $1, now: now, withCertificate: false).write(to: &$0) }
            }
        }
    }

    static let listLimit = 1_000

    static func add(to api: inout API) {
        let services = api.services
        api.route("POST", "/v1/erasures", roles: [.privacyOfficer]) { try await request($0, services) }
        api.route("GET", "/v1/erasures/{id}", roles: [.privacyOfficer]) { request in
            let id = request.http.parameter("id")
            guard let found = try services.store.read({ try ErasureRecords.find(id, in: $0) }) else {
                throw DomainError(.notFound, code: "unknown_erasure", detail: "no erasure request with this id")
            }
            return .json(Summary(request: found, now: request.now, withCertificate: true))
        }
        api.route("GET", "/v1/erasures", roles: [.privacyOfficer]) { request in
            let status = try request.http.queryParameters()["status"]
            guard status == nil || ["pending", "complete", "overdue"].contains(status!) else {
                throw DomainError(.malformed, code: "invalid_query", detail: "status must be pending, complete or overdue")
            }
            let found = try services.store.read { try ErasureRecords.list(status: status, now: request.now, limit: listLimit, in: $0) }
            return .json(List(requests: found, now: request.now))
        }
    }

    /// Whom the request is about, once validated.
    enum Target: Sendable {
        case pid(PID)
        case identifier(Identifier)
    }

    static func request(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(RequestBody.self)
        let target: Target
        switch (body.pid, body.identifier) {
        case (let text?, nil):
            target = .pid(try services.knownPID(text))
        case (nil, let identifier?):
            target = .identifier(try identifier.normalized())
        default:
            throw DomainError.invalid("pid, identifier", "give exactly one of them")
        }
        if let named = body.jurisdiction, ErasureRecords.deadlineDays[named] == nil {
            throw DomainError.invalid("jurisdiction", "must be one of \(ErasureRecords.deadlineDays.keys.sorted().joined(separator: ", "))")
        }
        let jurisdiction = body.jurisdiction ?? services.policy.jurisdiction(of: services.region) ?? "default"
        if case .pid(let pid) = target, pid.region != services.region {
            // The cascade to other regions comes with the federation; until then the client goes to the home region.
            throw DomainError.misdirected(home: pid.region, nodes: services.liveNodes(in: pid.region))
        }
        let signed = SignedErasureRequest.signed(
            erasureID: services.ids.next(.erasure), requestedAt: request.now,
            dueAt: request.now.adding(seconds: (ErasureRecords.deadlineDays[jurisdiction] ?? ErasureRecords.defaultDeadlineDays) * 86_400),
            jurisdiction: jurisdiction, originRegion: services.region, originNode: services.configuration.node.rawValue,
            policyVersion: Int64(services.policy.version), linkHash: try linkHash(of: target, services),
            expectedNodes: [services.region: try regionNodes(services)], key: services.keys.signing)
        let counts = try await recordAndErase(signed, target: target, request, services)
        // This node's ack is signed once the WAL no longer holds what was erased, so it can say so.
        let walTruncated = await truncateWAL(services)
        let ack = ErasureAck.signed(for: signed, region: services.region, node: signed.originNode,
                                    erasedAt: max(request.now, services.clock.now()), counts: counts, walTruncated: walTruncated,
                                    policyVersion: Int64(services.policy.version), key: services.keys.signing)
        let peerAcks = await RegionErasure.ask(peersOf: signed, target: target, services: services)
        let recorded = try await services.store.write { database in
            var recorded = try ErasureRecords.record(ack, originKey: services.keys.signing, now: ack.erasedAt, in: database)
            for peerAck in peerAcks {
                recorded = try ErasureRecords.record(peerAck, originKey: services.keys.signing,
                                                     now: max(ack.erasedAt, peerAck.erasedAt, services.clock.now()), in: database)
            }
            try AuditLog.append(request.event("erasure.request", outcome: recorded.status.rawValue,
                                              detail: "erasure_id=\(signed.erasureID),subjects=\(counts["subjects"] ?? 0)"), to: database)
            return recorded
        }
        services.metrics.countAudit(action: "erasure.request", outcome: recorded.status.rawValue)
        return .json(Summary(request: recorded, now: request.now, withCertificate: true), status: 202)
    }

    static func linkHash(of target: Target, _ services: NodeServices) throws -> [UInt8] {
        try services.store.read { try ErasureRecords.linkHash(of: target, keys: services.keys, in: $0) }
    }

    /// Records the signed request and erases its subjects here, in one
    /// transaction. Returns the rows erased per table (every counted table).
    static func recordAndErase(_ signed: SignedErasureRequest, target: Target, _ request: APIRequest,
                               _ services: NodeServices) async throws -> [String: Int64] {
        try await erase(target, services: services, event: { pid in
            request.event("erasure.erase", pid: pid.rawValue, outcome: "erased", detail: "erasure_id=\(signed.erasureID)")
        }, then: { erasedPIDs, database in
            try ErasureRecords.insert(signed, requestedBy: request.principal.name, erasedPIDs: erasedPIDs, in: database)
        })
    }

    /// Erases every subject `target` names on this node, in one transaction
    /// that appends `event` for each subject erased and runs `then` with
    /// their pids; each erased subject's bucket key is rotated, and the
    /// retired versions are destroyed once it committed (docs/DECISIONS.md,
    /// "Subject keys under bucket keys"). Returns the rows erased per table
    /// (every counted table).
    static func erase(_ target: Target, services: NodeServices, event: @escaping @Sendable (PID) -> AuditEvent,
                      then: @escaping @Sendable ([String], Database) throws -> Void = { _, _ in }) async throws -> [String: Int64] {
        // The subjects whose vectors left the indexes, to put back should the transaction fail.
        let touched = Locked<[PID]>([])
        do {
            let counts = try await services.store.write { database in
                let pids: [PID]
                switch target {
                case .pid(let pid): pids = [pid]
                case .identifier(let identifier): pids = try ErasureRecords.subjects(matching: identifier, keys: services.keys, in: database)
                }
                var counts = Dictionary(uniqueKeysWithValues: ErasureRecords.countedTables.map { ($0, Int64(0)) })
                var erasedPIDs: [String] = []
                for pid in pids {
                    touched.withLock { $0.append(pid) }
                    let erased = try ErasureRecords.eraseSubject(pid, vectors: services.vectors, in: database)
                    if erased["subjects", default: 0] > 0 { try services.keys.subjects.rotateBucket(of: pid, in: database) }
                    counts.merge(erased, uniquingKeysWith: +)
                    if (erased["subjects"] ?? 0) > 0 || (erased["consent_receipts"] ?? 0) > 0 {
                        erasedPIDs.append(pid.rawValue)
                        try AuditLog.append(event(pid), to: database)
                    }
                }
                try then(erasedPIDs, database)
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
    /// node keeps its disk). Until the region log replicates a region's
    /// data, each node holds only what it was sent, so none can answer for
    /// another (docs/DECISIONS.md, "Erasure").
    /// A node that has not joined its region yet does not know them: 503.
    static func regionNodes(_ services: NodeServices) throws -> [String] {
        let gossip = services.gossip.value
        if let gossip, !gossip.joined {
            throw APIError.notReady("this node has not joined its region yet, so it cannot name the nodes an erasure must reach")
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
    /// Returns whether the WAL was truncated.
    static func truncateWAL(_ services: NodeServices) async -> Bool {
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
