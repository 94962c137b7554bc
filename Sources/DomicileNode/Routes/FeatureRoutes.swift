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

    enum WithholdReason: String {
        case noConsent = "no_consent"
        case expired
    }

    struct Served: JSONWritable {
        let pid: PID
        let purpose: Purpose
        let features: [StoredFeature]
        let withheld: [(Name, WithholdReason)]

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

    static let valuesPerWriteMax = 256

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
        let outcome = try await services.store.write { database -> FeatureRecords.Upsert in
            let outcome = try FeatureRecords.upsert(definition, now: request.now, in: database)
            if case .inUse = outcome { return outcome }
            try AuditLog.append(request.event("feature.define", purpose: purpose.rawValue, detail: "feature=\(name)"), to: database)
            return outcome
        }
        switch outcome {
        case .created: return .json(Definition(definition: definition), status: 201)
        case .updated: return .json(Definition(definition: definition))
        case .inUse(let count):
            throw DomainError(.conflict, code: "definition_in_use",
                            detail: "\(count) stored values have this feature's type and purpose; define a new feature instead")
        }
    }

    // MARK: Values

    static func write(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        let body = try request.http.decode(ValuesBody.self)
        guard (1...valuesPerWriteMax).contains(body.values.count) else {
            throw DomainError.invalid("values", "send 1 to \(valuesPerWriteMax) values")
        }
        var values: [(name: Name, value: FeatureValue, field: String)] = []
        for (text, json) in body.values.sorted(by: { $0.key < $1.key }) {
            guard let name = try? Name(text, what: "feature name") else {
                throw DomainError(.invalid, code: "unknown_feature", detail: "values: a feature name is malformed")
            }
            values.append((name, try featureValue(json, field: "values.\(name)"), "values.\(name)"))
        }
        let pid = try services.homePID(request.http.parameter("pid"))
        let toStore = values
        let written = try await services.writeAudited(request, action: "feature.write", pid: pid) { database -> [FeatureDefinition] in
            let written = try store(toStore, for: pid, services: services, now: request.now, in: database)
            try AuditLog.append(request.event("feature.write", pid: pid.rawValue, purpose: purposeField(written),
                                              detail: "written=\(written.count)"), to: database)
            return written
        }
        return .json(Written(pid: pid, names: written.map(\.name)))
    }

    /// A JSON value as a feature value: a number, a string (refused when it
    /// looks like an identifier) or a bool.
    static func featureValue(_ json: JSONValue, field: String) throws(DomainError) -> FeatureValue {
        switch json {
        case .number(let number): return .number(number)
        case .bool(let flag): return .bool(flag)
        case .string(let text):
            if let kind = PIIClassifier.classify(text) { throw piiDetected(field: field, kind: kind) }
            guard text.utf8.count <= FeatureValue.stringBytesMax else {
                throw DomainError.invalid(field, "longer than \(FeatureValue.stringBytesMax) bytes")
            }
            return .string(text)
        case .null, .array, .object:
            throw DomainError(.invalid, code: "type_mismatch", detail: "\(field): must be a number, a string or a bool")
        }
    }

    static func piiDetected(field: String, kind: PIIClassifier.Kind) -> DomainError {
        DomainError(.invalid, code: "pii_detected",
                  detail: "\(field): the value looks like \(kind.article) \(kind.description); this field may not hold an identifier")
    }

    /// Stores values for one subject in the caller's transaction, all or
    /// nothing: the subject must exist, every feature be defined with the
    /// value's type, and every purpose involved be covered now.
    static func store(_ values: [(name: Name, value: FeatureValue, field: String)], for pid: PID, services: NodeServices,
                      now: Timestamp, in database: Database) throws -> [FeatureDefinition] {
        guard let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database) else { throw DomainError.unknownSubject() }
        var typed: [(FeatureDefinition, FeatureValue)] = []
        for (name, value, field) in values {
            guard let definition = try FeatureRecords.definition(name, in: database) else {
                throw DomainError(.invalid, code: "unknown_feature", detail: "\(field): no feature \(name) is defined")
            }
            guard definition.type == value.type else {
                throw DomainError(.invalid, code: "type_mismatch", detail: "\(field): feature \(name) holds a \(definition.type.rawValue)")
            }
            typed.append((definition, value))
        }
        let grants = try ConsentRecords.activeGrants(of: pid, in: database)
        var coverage: [Purpose: Coverage] = [:]
        for purpose in Set(typed.map(\.0.purpose)) { coverage[purpose] = services.coverage(of: purpose, grants: grants, now: now) }
        let uncovered = coverage.filter { !$0.value.isCovered }.keys.map(\.rawValue).sorted()
        guard uncovered.isEmpty else {
            throw DomainError(.refused, code: "consent_required",
                            detail: "the subject's consent does not cover \(uncovered.joined(separator: ", ")); nothing was stored")
        }
        try FeatureRecords.write(typed, pid: pid, key: key, coverage: coverage, now: now, in: database)
        return typed.map(\.0)
    }

    static func purposeField(_ definitions: [FeatureDefinition]) -> String? {
        let purposes = Set(definitions.map(\.purpose.rawValue)).sorted()
        return purposes.isEmpty ? nil : purposes.joined(separator: ",")
    }

    static func read(_ request: APIRequest, _ services: NodeServices) async throws -> HTTPResponse {
        guard let purposeText = try request.http.queryParameters()["purpose"], !purposeText.isEmpty else {
            throw DomainError(.malformed, code: "purpose_required", detail: "say why you read: ?purpose=…")
        }
        let purpose = try services.regionPurpose(purposeText, field: "purpose")
        let pid = try services.homePID(request.http.parameter("pid"))
        let now = request.now
        let (features, withheld) = try await services.readSubject(pid, action: "feature.read", request: request) { database in
            let definitions = try FeatureRecords.definitions(for: purpose, in: database)
            let grants = try ConsentRecords.activeGrants(of: pid, in: database)
            guard services.coverage(of: purpose, grants: grants, now: now).isCovered else {
                // Nothing is decrypted for a purpose the subject does not cover.
                return ([StoredFeature](), definitions.map { ($0.name, WithholdReason.noConsent) })
            }
            guard let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database) else { return ([], []) }
            let stored = try FeatureRecords.values(of: pid, purpose: purpose, key: key, in: database)
            let defined = Set(definitions.map(\.name))
            let current = stored.filter { defined.contains($0.name) }
            return (current.filter { now < $0.expiresAt }, current.filter { now >= $0.expiresAt }.map { ($0.name, WithholdReason.expired) })
        }
        try await services.audit(request.event("feature.read", pid: pid.rawValue, purpose: purpose.rawValue,
                                               detail: "returned=\(features.count),withheld=\(withheld.count)"))
        return .json(Served(pid: pid, purpose: purpose, features: features, withheld: withheld))
    }
}

extension FeatureValue {
    func write(to json: inout JSONWriter) {
        switch self {
        case .number(let number): json.value(number)
        case .string(let text): json.value(text)
        case .bool(let flag): json.value(flag)
        }
    }
}

extension PIIClassifier.Kind: CustomStringConvertible {
    public var description: String {
        switch self {
        case .email: return "e-mail address"
        case .phone: return "phone number"
        case .paymentCard: return "payment card number"
        case .iban: return "IBAN"
        }
    }

    var article: String { self == .email || self == .iban ? "an" : "a" }
}
