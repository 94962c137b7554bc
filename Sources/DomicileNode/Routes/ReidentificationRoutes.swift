import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// `POST /v1/reidentifications`, approvals, and the one-time fetch (`ReidentificationService`).
enum ReidentificationRoutes {
    struct CreateBody: Decodable, Sendable {
        let pid: String
        let reason: String
        let ticket: String
    }

    struct State: JSONWritable {
        let record: ReidentificationService.Record
        var identifiers: [Identifier]? = nil

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("id", record.id)
                json.member("pid", record.pid.rawValue)
                json.member("status", record.status.rawValue)
                json.member("requester", record.requester)
                json.key("approvals")
                json.array(record.approvers) { $0.value($1) }
                if let identifiers {
                    json.key("identifiers")
                    json.array(identifiers) { json, identifier in
                        json.object { json in
                            json.member("kind", identifier.kind.rawValue)
                            json.member("value", identifier.value)
                        }
                    }
                }
            }
        }
    }

    static func add(to api: inout API) {
        let services = api.services
        api.route("POST", "/v1/reidentifications", roles: [.privacyOfficer]) { try await create($0, services) }
        api.route("POST", "/v1/reidentifications/{id}/approvals", roles: [.privacyOfficer]) { try await approve($0, services) }
        // The first fetch after approval releases the identifiers: a HEAD must not (405).
        api.route("GET", "/v1/reidentifications/{id}", roles: [.privacyOfficer], limited: true, servesHead: false) {
            try await fetch($0, services)
        }
    }

    static func create(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(CreateBody.self)
        let record = try await ReidentificationService.create(pid: body.pid, reason: body.reason, ticket: body.ticket, call: request.call)
        return .json(State(record: record), status: 201)
    }

    static func approve(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        .json(State(record: try await ReidentificationService.approve(request.http.parameter("id"), call: request.call)))
    }

    static func fetch(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let (record, identifiers) = try await ReidentificationService.fetch(request.http.parameter("id"), call: request.call)
        return .json(State(record: record, identifiers: identifiers))
    }
}
