import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Feature definitions, and feature values per subject: written only under
/// coverage for their purpose, served only by purpose, while still covered
/// and within their TTL.
enum FeatureRoutes {
    struct DefinitionBody: Decodable, Sendable {
        let type: String
        let purpose: String
        let ttlSeconds: Int64
        let classification: String
    }

    struct ValuesBody: Decodable, Sendable {
        let values: [String: JSONValue]
    }

    struct Definitions: JSONWritable {
        let definitions: [FeatureDefinition]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.key("definitions")
                json.array(definitions) { Definition(definition: $1).write(to: &$0) }
            }
        }
    }

    struct Definition: JSONWritable {
        let definition: FeatureDefinition

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("name", definition.name.rawValue)
                json.member("type", definition.type.rawValue)
                json.member("purpose", definition.purpose.rawValue)
                json.member("ttl_seconds", definition.ttlSeconds)
                json.member("classification", definition.classification.rawValue)
            }
        }
    }

    struct Written: JSONWritable {
        let pid: PID
        let names: [Name]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.key("written")
                json.array(names) { $0.value($1.rawValue) }
            }
        }
    }

    struct Served: JSONWritable {
        let pid: PID
        let purpose: Purpose
        let features: [StoredFeature]
        let withheld: [(Name, FeatureService.WithholdReason)]

        func write(to json: inout JSONWriter) {
            json.object { json in
                json.member("pid", pid.rawValue)
                json.member("purpose", purpose.rawValue)
                json.key("features")
                json.object { json in
                    for feature in features {
                        json.key(escaping: feature.name.rawValue)
                        feature.value.write(to: &json)
                    }
                }
                json.key("withheld")
                json.array(withheld) { json, entry in
                    json.object { json in
                        json.member("name", entry.0.rawValue)
                        json.member("reason", entry.1.rawValue)
                    }
                }
            }
        }
    }

    static func add(to api: inout API) {
        let services = api.services
        api.route("PUT", "/v1/feature-definitions/{name}", roles: [.admin]) { try await define($0, services) }
        api.route("GET", "/v1/feature-definitions", roles: []) { _ in
            .json(Definitions(definitions: try services.store.read { try FeatureRecords.definitions(in: $0) }))
        }
        api.route("PUT", "/v1/subjects/{pid}/features", roles: [.ingest]) { try await write($0, services) }
        api.route("GET", "/v1/subjects/{pid}/features", roles: [.serve], limited: true) { try await read($0, services) }
    }

    // MARK: Definitions

    static func define(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        guard let name = try? Name(request.http.parameter("name"), what: "feature name") else {
            throw DomainError.invalid("name", "feature names are 1-64 lowercase letters, digits and _, starting with a letter")
        }
        let body = try request.http.decode(DefinitionBody.self)
        guard let type = FeatureType(rawValue: body.type) else { throw DomainError.invalid("type", "must be number, string or bool") }
        let purpose = try services.regionPurpose(body.purpose, field: "purpose")
        guard (1...FeatureDefinition.ttlSecondsMax).contains(body.ttlSeconds) else {
            throw DomainError.invalid("ttl_seconds", "must be 1 to \(FeatureDefinition.ttlSecondsMax) seconds")
        }
        guard let classification = try? Name(body.classification, what: "classification") else {
            throw DomainError.invalid("classification", "1-64 lowercase letters, digits and _, e.g. behavioral")
        }
        let definition = FeatureDefinition(name: name, type: type, purpose: purpose, ttlSeconds: body.ttlSeconds, classification: classification)
        let outcome = try await FeatureService.define(definition, call: request.call)
        return .json(Definition(definition: definition), status: outcome == .created ? 201 : 200)
    }

    // MARK: Values

    static func write(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(ValuesBody.self)
        guard (1...FeatureService.valuesPerWriteMax).contains(body.values.count) else {
            throw DomainError.invalid("values", "send 1 to \(FeatureService.valuesPerWriteMax) values")
        }
        var values: [(name: Name, value: FeatureValue, field: String)] = []
        for (text, json) in body.values.sorted(by: { $0.key < $1.key }) {
            guard let name = try? Name(text, what: "feature name") else {
                throw DomainError(.invalid, code: "unknown_feature", detail: "values: a feature name is malformed")
            }
            values.append((name, try FeatureService.featureValue(json, field: "values.\(name)"), "values.\(name)"))
        }
        let pid = try services.homePID(request.http.parameter("pid"))
        let written = try await FeatureService.write(values, for: pid, call: request.call)
        return .json(Written(pid: pid, names: written.map(\.name)))
    }

    static func read(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        guard let purposeText = try request.http.queryParameters()["purpose"], !purposeText.isEmpty else {
            throw DomainError(.malformed, code: "purpose_required", detail: "say why you read: ?purpose=…")
        }
        let purpose = try services.regionPurpose(purposeText, field: "purpose")
        let pid = try services.homePID(request.http.parameter("pid"))
        let (features, withheld) = try await FeatureService.read(pid, purpose: purpose, call: request.call)
        return .json(Served(pid: pid, purpose: purpose, features: features, withheld: withheld))
    }
}
