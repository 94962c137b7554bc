import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// `POST /v1/erasures`, `GET /v1/erasures/{id}`, `GET /v1/erasures` (`ErasureService`).
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
        let services: NodeServices

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
                    json.value(status.rawValue)
                }
            }
            json.key("region_status")
            json.object { json in
                for (region, state) in request.regions.sorted(by: { $0.key < $1.key }) {
                    json.key(escaping: region.rawValue)
                    RegionStatusJSON(region: region, state: state, services: services, now: now).write(to: &json)
                }
            }
            json.key("waiting_for")
            json.array(request.regions.filter { $0.value != .erased }.keys.sorted()) { $0.value($1.rawValue) }
            if let signed = request.signed {
                json.key("expected_nodes")
                NodesJSON(nodes: signed.expectedNodes).write(to: &json)
                json.key("waiting_for_nodes")
                NodesJSON(nodes: request.waitingForNodes).write(to: &json)
            }
        }
    }

    /// Where one expected region stands, for a reader of a pending request:
    /// its state, when this node last exchanged with it through the
    /// federation, and why it is not erased yet — `confirming` (this region:
    /// its nodes are confirming), `awaiting_ack` (a region heard from within
    /// `contactRecentSeconds`), `unreachable` (not heard from since).
    struct RegionStatusJSON: JSONWritable {
        static let contactRecentSeconds: Int64 = 15
        let region: RegionID
        let state: ErasureRequest.RegionState
        let services: NodeServices
        let now: Timestamp

        func write(to json: inout JSONWriter) {
            let contact = region == services.region ? nil : services.federation.value?.lastContact(with: region)
            json.object { json in
                json.member("state", state.rawValue)
                json.key("last_contact")
                if let contact { json.value(contact.rfc3339) } else { json.null() }
                json.key("code")
                switch state {
                case .erased: json.null()
                case .pending where region == services.region: json.value("confirming")
                case .pending:
                    let recent = contact.map { now.milliseconds - $0.milliseconds <= Self.contactRecentSeconds * 1_000 } ?? false
                    json.value(recent ? "awaiting_ack" : "unreachable")
                }
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
        let services: NodeServices

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("erasures")
                json.array(requests) { Summary(request: $1, now: now, withCertificate: false, services: services).write(to: &$0) }
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
            return .json(Summary(request: found, now: request.now, withCertificate: true, services: services))
        }
        api.route("GET", "/v1/erasures", roles: [.privacyOfficer]) { request in
            let status = try request.http.queryParameters()["status"]
            guard status == nil || ["pending", "complete", "overdue"].contains(status!) else {
                throw DomainError(.malformed, code: "invalid_query", detail: "status must be pending, complete or overdue")
            }
            let found = try services.store.read { try ErasureRecords.list(status: status, now: request.now, limit: listLimit, in: $0) }
            return .json(List(requests: found, now: request.now, services: services))
        }
    }

    static func request(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(RequestBody.self)
        let target: ErasureService.Target
        switch (body.pid, body.identifier) {
        case (let text?, nil):
            target = .pid(try services.knownPID(text))
        case (nil, let identifier?):
            target = .identifier(try identifier.normalized())
        default:
            throw DomainError.invalid("pid, identifier", "give exactly one of them")
        }
        let recorded = try await ErasureService.request(target, jurisdiction: body.jurisdiction, call: request.call)
        return .json(Summary(request: recorded, now: request.now, withCertificate: true, services: services), status: 202)
    }
}
