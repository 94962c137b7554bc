import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// `POST /v1/erasures`, `GET /v1/erasures/{id}`, `GET /v1/erasures`.
///
/// The local part of the erasure cascade (DESIGN.md section 9): the request
/// is recorded, the subject erased in this region, this region's ack signed
/// and stored, all in one transaction; then the WAL is checkpointed and
/// truncated. Until the federation carries erasure signals, a request covers
/// this region only, and a pid of another region is answered 421.
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
                    CertificateJSON(certificate: certificate).write(to: &json)
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
        }
    }

    struct CertificateJSON: JSONWritable {
        let certificate: ErasureCertificate

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("erasure_id", certificate.erasureID)
                json.member("requested_at", certificate.requestedAt)
                json.member("completed_at", certificate.completedAt)
                json.key("acks")
                json.array(certificate.acks) { json, ack in
                    json.object { json in
                        json.member("region", ack.region.rawValue)
                        json.member("node", ack.node)
                        json.member("erased_at", ack.erasedAt)
                        json.key("counts")
                        json.object { json in
                            for (table, count) in ack.counts.sorted(by: { $0.key < $1.key }) {
                                json.key(escaping: table)
                                json.value(count)
                            }
                        }
                        json.member("signature", Base64.encode(ack.signature))
                        json.member("public_key", Base64.encode(ack.publicKey.rawRepresentation))
                    }
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
                throw HTTPError(status: 404, code: "unknown_erasure", detail: "no erasure request with this id")
            }
            return .json(Summary(request: found, now: request.now, withCertificate: true))
        }
        api.route("GET", "/v1/erasures", roles: [.privacyOfficer]) { request in
            let status = try request.http.queryParameters()["status"]
            guard status == nil || ["pending", "complete", "overdue"].contains(status!) else {
                throw HTTPError(status: 400, code: "invalid_query", detail: "status must be pending, complete or overdue")
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
            throw APIError.invalid("pid, identifier", "give exactly one of them")
        }
        if let named = body.jurisdiction, ErasureRecords.deadlineDays[named] == nil {
            throw APIError.invalid("jurisdiction", "must be one of \(ErasureRecords.deadlineDays.keys.sorted().joined(separator: ", "))")
        }
        let jurisdiction = body.jurisdiction ?? services.policy.jurisdiction(of: services.region) ?? "default"
        if case .pid(let pid) = target, pid.region != services.region {
            // The cascade to other regions comes with the federation; until then the client goes to the home region.
            throw APIError.misdirected(home: pid.region, nodes: services.liveNodes(in: pid.region))
        }
        let erasureID = "er_" + Hex.encode(SecureRandom.bytes(12))
        let days = ErasureRecords.deadlineDays[jurisdiction] ?? ErasureRecords.defaultDeadlineDays
        // The subjects whose vectors left the indexes, to put back should the transaction fail.
        let touched = Locked<[PID]>([])
        let erased: ErasureRequest
        do {
            erased = try await services.store.write { database -> ErasureRequest in
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
                    counts.merge(erased, uniquingKeysWith: +)
                    if (erased["subjects"] ?? 0) > 0 || (erased["consent_receipts"] ?? 0) > 0 {
                        erasedPIDs.append(pid.rawValue)
                        try AuditLog.append(request.event("erasure.erase", pid: pid.rawValue, outcome: "erased", detail: "erasure_id=\(erasureID)"),
                                            to: database)
                    }
                }
                let ack = ErasureAck.signed(erasureID: erasureID, region: services.region, node: services.configuration.node.rawValue,
                                            erasedAt: request.now, counts: counts, key: services.keys.signing)
                let record = ErasureRequest(erasureID: erasureID, requestedAt: request.now, requestedBy: request.principal.name,
                                            originRegion: services.region, jurisdiction: jurisdiction,
                                            dueAt: request.now.adding(seconds: days * 86_400), erasedPIDs: erasedPIDs, status: .complete,
                                            completedAt: request.now, regions: [services.region: "erased"], acks: [ack])
                try ErasureRecords.insert(record, in: database)
                try AuditLog.append(request.event("erasure.request", outcome: "complete",
                                                  detail: "erasure_id=\(erasureID),subjects=\(counts["subjects"] ?? 0)"), to: database)
                return record
            }
        } catch {
            try? await services.resynchronizeVectors(of: touched.value)
            throw error
        }
        services.metrics.countAudit(action: "erasure.request", outcome: "complete")
        await truncateWAL(services)
        return .json(Summary(request: erased, now: request.now, withCertificate: true), status: 202)
    }

    /// Nothing erased may remain in the WAL: checkpoint it into the database
    /// (where secure_delete has zeroed the deleted rows) and truncate it. A
    /// reader pinning old frames can make this fail; it is retried, and a
    /// failure is logged and counted (the erased ciphertexts are unreadable
    /// anyway: their subject key is gone).
    static func truncateWAL(_ services: NodeServices) async {
        for attempt in 1...3 {
            do {
                try await services.store.checkpointAndTruncateWAL()
                return
            } catch {
                if attempt == 3 {
                    services.metrics.increment("domicile_erasure_checkpoint_failures_total")
                    services.logger.error("erasure checkpoint failed", ["error": .string("\(error)")])
                }
            }
        }
    }
}
