import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// Event contracts (minimization at ingestion): an allowlist of fields with
/// their types and transforms, mapped to features. Events are checked and
/// minimized before anything is stored.
enum ContractRoutes {
    struct FieldBody: Codable, Sendable {
        let type: String
        let feature: String?
        let transform: String?
        let identity: Bool?
    }

    struct ContractBody: Codable, Sendable {
        let fields: [String: FieldBody]
    }

    struct EventBody: Decodable, Sendable {
        let pid: String
        let fields: [String: JSONValue]
    }

    /// A contract as stored and served.
    struct Contract: JSONWritable {
        let name: Name
        let contract: EventContract

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("name", name.rawValue)
                json.key("fields")
                json.object { json in
                    for (field, spec) in contract.fields.sorted(by: { $0.key < $1.key }) {
                        json.key(escaping: field)
                        json.object { json in
                            json.member("type", spec.type.rawValue)
                            json.member("feature", spec.feature?.rawValue)
                            json.member("transform", spec.transform?.rawValue)
                            json.member("identity", spec.identity)
                        }
                    }
                }
            }
        }
    }

    struct Contracts: JSONWritable {
        let contracts: [Contract]

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

    /// Field names and map keys are case-sensitive: no key conversion.
    static let decoder = JSONDecoder()

    static func add(to api: inout API) {
        let services = api.services
        api.route("PUT", "/v1/contracts/{name}", roles: [.admin]) { try await define($0, services) }
        api.route("GET", "/v1/contracts", roles: []) { _ in
            .json(Contracts(contracts: try services.store.read { try ContractRecords.all(in: $0) }))
        }
        api.route("POST", "/v1/events/{contract}", roles: [.ingest]) { try await ingest($0, services) }
    }

    /// The contract a body describes, checked on its own (not yet against
    /// the feature definitions).
    static func parse(_ body: ContractBody) throws(DomainError) -> EventContract {
        var fields: [String: EventContract.Field] = [:]
        for (name, field) in body.fields {
            let path = EventContract.isFieldName(name) ? "fields.\(name)" : "fields"
            guard let type = EventContract.FieldType(rawValue: field.type) else {
                throw invalidContract("\(path).type", "must be string, number, bool or timestamp")
            }
            var feature: Name?
            if let text = field.feature {
                guard let name = try? Name(text, what: "feature name") else { throw invalidContract("\(path).feature", "is not a feature name") }
                feature = name
            }
            var transform: Transform?
            if let text = field.transform {
                guard let known = Transform(rawValue: text) else {
                    throw invalidContract("\(path).transform", "must be bucket_day, bucket_hour, ip_prefix, coarse_geo or drop")
                }
                transform = known
            }
            fields[name] = EventContract.Field(type: type, feature: feature, transform: transform, identity: field.identity ?? false)
        }
        do { return try EventContract(fields: fields) } catch { throw invalidContract(error.field, error.reason) }
    }

    static func invalidContract(_ field: String, _ reason: String) -> DomainError {
        DomainError(.invalid, code: "invalid_contract", detail: "\(field): \(reason)")
    }

    /// Every feature the contract feeds must exist with the type its field stores.
    static func checkFeatures(_ contract: EventContract, in database: Database) throws {
        for (feature, field) in contract.features.sorted(by: { $0.key < $1.key }) {
            guard let definition = try FeatureRecords.definition(feature, in: database) else {
                throw DomainError(.invalid, code: "unknown_feature", detail: "no feature \(feature) is defined")
            }
            guard definition.type == field.storedType else {
                throw DomainError(.invalid, code: "type_mismatch",
                                detail: "feature \(feature) holds a \(definition.type.rawValue); its field stores a \(field.storedType.rawValue)")
            }
        }
    }

    static func define(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        guard let name = try? Name(request.http.parameter("name"), what: "contract name") else {
            throw DomainError.invalid("name", "contract names are 1-64 lowercase letters, digits and _, starting with a letter")
        }
        let contract = try parse(try request.http.decode(ContractBody.self, using: decoder))
        let created = try await services.store.write { database -> Bool in
            try checkFeatures(contract, in: database)
            let created = try ContractRecords.save(Contract(name: name, contract: contract), now: request.now, in: database)
            try AuditLog.append(request.event("contract.define", detail: "contract=\(name)"), to: database)
            return created
        }
        return .json(Contract(name: name, contract: contract), status: created ? 201 : 200)
    }

    static func ingest(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(EventBody.self, using: decoder)
        guard let name = try? Name(request.http.parameter("contract"), what: "contract name"),
              let contract = try services.store.read({ try ContractRecords.find(name, in: $0) }) else {
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
        let updates: [EventContract.Update]
        do { updates = try contract.minimize(values) } catch { throw problem(error) }
        let pid = try services.homePID(body.pid)
        let toStore = updates.map { (name: $0.feature, value: $0.value, field: "fields.\($0.field)") }
        let written = try await services.writeAudited(request, action: "event.ingest", pid: pid) { database -> [FeatureDefinition] in
            let written = try FeatureRoutes.store(toStore, for: pid, services: services, now: request.now, in: database)
            try AuditLog.append(request.event("event.ingest", pid: pid.rawValue, purpose: FeatureRoutes.purposeField(written),
                                              detail: "contract=\(name),written=\(written.count)"), to: database)
            return written
        }
        return .json(Updated(features: written.map(\.name).sorted()), status: 202)
    }

    static func problem(_ rejection: EventContract.Rejection) -> DomainError {
        switch rejection {
        case .unknownFields(let named, let unnamed):
            var list = named.joined(separator: ", ")
            if unnamed > 0 { list += (list.isEmpty ? "" : " and ") + "\(unnamed) field(s) with unprintable names" }
            return DomainError(.invalid, code: "unknown_field", detail: "the contract does not allow: \(list)",
                             extensions: ["fields": .array(named.map(JSONValue.string))])
        case .typeMismatch(let field, let expected):
            return DomainError(.invalid, code: "type_mismatch", detail: "fields.\(field): must be a \(expected.rawValue)")
        case .piiDetected(let field, let kind):
            return FeatureRoutes.piiDetected(field: "fields.\(field)", kind: kind)
        case .invalidValue(let field, let reason):
            return DomainError(.invalid, code: "invalid_field", detail: "fields.\(field): \(reason)")
        }
    }
}
