import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// Event contracts (minimization at ingestion): an allowlist of fields with
/// their types and transforms, mapped to features. Events are checked and
/// minimized before anything is stored.
enum ContractRoutes {
    struct EventBody: Decodable, Sendable {
        let pid: String
        let fields: [String: JSONValue]
    }

    struct Contracts: JSONWritable {
        let contracts: [NamedContract]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("contracts")
                json.array(contracts) { $1.write(to: &$0) }
            }
        }
    }

    struct Updated: JSONWritable {
        let features: [Name]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("features_updated")
                json.array(features) { $0.value($1.rawValue) }
            }
        }
    }

    static func add(to api: inout API) {
        let services = api.services
        api.route("PUT", "/v1/contracts/{name}", roles: [.admin]) { try await define($0, services) }
        api.route("GET", "/v1/contracts", roles: []) { _ in
            .json(Contracts(contracts: try services.store.read { try ContractRecords.all(in: $0) }))
        }
        api.route("POST", "/v1/events/{contract}", roles: [.ingest]) { try await ingest($0, services) }
    }

    static func define(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        guard let name = try? Name(request.http.parameter("name"), what: "contract name") else {
            throw DomainError.invalid("name", "contract names are 1-64 lowercase letters, digits and _, starting with a letter")
        }
        let contract = try request.http.decode(ContractDocument.self, using: ContractDocument.decoder).contract()
        let named = NamedContract(name: name, contract: contract)
        return .json(named, status: try await ContractService.define(named, call: request.call) ? 201 : 200)
    }

    static func ingest(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(EventBody.self, using: ContractDocument.decoder)
        guard let name = try? Name(request.http.parameter("contract"), what: "contract name") else {
            throw DomainError(.notFound, code: "unknown_contract", detail: "no event contract with this name")
        }
        var values: [String: EventContract.Value] = [:]
        for (field, json) in body.fields {
            switch json {
            case .null: values[field] = .null
            case .string(let text): values[field] = .string(text)
            case .number(let number): values[field] = .number(number)
            case .bool(let flag): values[field] = .bool(flag)
            case .array, .object: values[field] = .structured
            }
        }
        let updates = try ContractService.minimize(values, contract: name, services: services)
        let pid = try services.homePID(body.pid)
        let written = try await ContractService.ingest(updates, pid: pid, contract: name, call: request.call)
        return .json(Updated(features: written.map(\.name).sorted()), status: 202)
    }
}
