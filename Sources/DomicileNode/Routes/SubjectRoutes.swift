import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// `POST /v1/subjects`, `POST /v1/subjects/lookup`, `GET /v1/subjects/{pid}`.
enum SubjectRoutes {
    struct RegisterBody: Decodable, Sendable {
        let identifier: IdentifierBody
        let country: String?
        let region: String?
    }

    struct LookupBody: Decodable, Sendable {
        let identifier: IdentifierBody
    }

    struct Registered: JSONWritable {
        let pid: PID
        let region: RegionID
        let created: Bool

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.member("region", region.rawValue)
                json.member("created", created)
            }
        }
    }

    struct Found: JSONWritable {
        let pid: PID

        func write(to json: inout JSONWriter) {
            json.object { $0.member("pid", pid.rawValue) }
        }
    }

    struct Subject: JSONWritable {
        let pid: PID
        let region: RegionID
        let createdAt: Timestamp
        let activePurposes: [Purpose]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.member("region", region.rawValue)
                json.member("created_at", createdAt)
                json.key("active_purposes")
                json.array(activePurposes) { $0.value($1.rawValue) }
            }
        }
    }

    static func add(to api: inout API) {
        let services = api.services
        api.route("POST", "/v1/subjects", roles: [.ingest]) { try await register($0, services) }
        api.route("POST", "/v1/subjects/lookup", roles: [.ingest, .serve], limited: true) { try await lookup($0, services) }
        api.route("GET", "/v1/subjects/{pid}", roles: [.serve, .privacyOfficer], limited: true) { try await read($0, services) }
    }

    /// The home region named by `region` or `country`, through the policy.
    static func homeRegion(country: String?, region: String?, policy: ResidencyPolicy) throws(DomainError) -> RegionID {
        switch (country, region) {
        case (nil, let name?):
            guard let region = try? RegionID(name), policy.isKnown(region) else {
                throw DomainError.unknownRegion("region: the policy has no such region")
            }
            return region
        case (let code?, nil):
            guard let country = try? CountryCode(code), let region = policy.region(forCountry: country) else {
                throw DomainError.unknownRegion("country: no region of the policy covers this country (use ISO 3166-1 alpha-2)")
            }
            return region
        default:
            throw DomainError.invalid("country, region", "give exactly one of them")
        }
    }

    static func register(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(RegisterBody.self)
        let identifier = try body.identifier.normalized()
        let home = try homeRegion(country: body.country, region: body.region, policy: services.policy)
        // The identifier must reach the right region from the client: it is
        // never carried across the border by this node.
        guard home == services.region else { throw DomainError.misdirected(home: home, nodes: services.liveNodes(in: home)) }
        let candidates = services.keys.pseudonymizers.candidates(for: identifier)
        let keys = services.keys
        let (pid, created) = try await services.store.write { database -> (PID, Bool) in
            if let existing = try SubjectRecords.find(candidates, keys: keys, in: database) {
                try AuditLog.append(request.event("subject.register", pid: existing.pid.rawValue, outcome: "existing"), to: database)
                return (existing.pid, false)
            }
            let pid = candidates[0]
            if try SubjectRecords.exists(pid, in: database) {
                // What is left of an erased subject whose key is destroyed (a restored copy): erase it before the new one.
                _ = try ErasureRecords.eraseSubject(pid, vectors: services.vectors, in: database)
            }
            try SubjectRecords.insert(pid: pid, identifier: identifier, keys: keys, now: request.now, in: database)
            try AuditLog.append(request.event("subject.register", pid: pid.rawValue, outcome: "created"), to: database)
            return (pid, true)
        }
        services.metrics.countAudit(action: "subject.register", outcome: created ? "created" : "existing")
        return .json(Registered(pid: pid, region: services.region, created: created), status: created ? 201 : 200)
    }

    static func lookup(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(LookupBody.self)
        let identifier = try body.identifier.normalized()
        let candidates = services.keys.pseudonymizers.candidates(for: identifier)
        let found = try services.store.read { try SubjectRecords.find(candidates, keys: services.keys, in: $0) }
        try await services.audit(request.event("subject.lookup", pid: found?.pid.rawValue, outcome: found == nil ? "not_found" : "ok"))
        guard let found else { throw DomainError.unknownSubject() }
        return .json(Found(pid: found.pid))
    }

    static func read(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let pid = try services.homePID(request.http.parameter("pid"))
        let (row, grants) = try await services.readSubject(pid, action: "subject.read", request: request) { database in
            (try SubjectRecords.find(pid, keys: services.keys, in: database), try ConsentRecords.activeGrants(of: pid, in: database))
        }
        guard let row else { throw DomainError.unknownSubject() }
        let active = ConsentRoutes.inForce(grants, services: services, now: request.now)
        try await services.audit(request.event("subject.read", pid: pid.rawValue))
        return .json(Subject(pid: pid, region: services.region, createdAt: row.createdAt, activePurposes: active.map(\.purpose)))
    }
}
