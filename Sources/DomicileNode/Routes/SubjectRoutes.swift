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

    struct BatchBody: Decodable, Sendable {
        let subjects: [RegisterBody]
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
        api.route("POST", "/v1/subjects/batch", roles: [.ingest], bodyBytesMax: services.configuration.limits.batchBodyBytesMax) {
            try await registerBatch($0, services)
        }
        api.route("POST", "/v1/subjects/lookup", roles: [.ingest, .serve], limited: true) { try await lookup($0, services) }
        api.route("GET", "/v1/subjects/{pid}", roles: [.serve, .privacyOfficer], limited: true) { try await read($0, services) }
    }

    static func register(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(RegisterBody.self)
        let identifier = try body.identifier.normalized()
        let home = try SubjectService.homeRegion(country: body.country, region: body.region, policy: services.policy)
        let (pid, created) = try await SubjectService.register(identifier, home: home, call: request.call)
        return .json(Registered(pid: pid, region: services.region, created: created), status: created ? 201 : 200)
    }

    /// Each subject's answer as its single registration would give it
    /// (status, and its pid or its problem), in the order sent.
    static func registerBatch(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(BatchBody.self)
        let entries = body.subjects.map { entry -> SubjectService.BatchEntry in
            do throws(DomainError) {
                let identifier = try entry.identifier.normalized()
                return .success((identifier, try SubjectService.homeRegion(country: entry.country, region: entry.region, policy: services.policy)))
            } catch {
                return .failure(error)
            }
        }
        let results = try await SubjectService.registerBatch(entries, call: request.call)
        return .json(BatchResults(results) { json, registered in
            json.member("pid", registered.pid.rawValue)
            json.member("region", services.region.rawValue)
            json.member("created", registered.created)
        } status: { $0.created ? 201 : 200 })
    }

    static func lookup(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let identifier = try request.http.decode(LookupBody.self).identifier.normalized()
        return .json(Found(pid: try await SubjectService.lookup(identifier, call: request.call)))
    }

    static func read(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let pid = try services.homePID(request.http.parameter("pid"))
        let (row, active) = try await SubjectService.read(pid, call: request.call)
        return .json(Subject(pid: pid, region: services.region, createdAt: row.createdAt, activePurposes: active.map(\.purpose)))
    }
}
