import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Feature definitions, and feature values per subject: written only under
/// coverage for their purpose, served only by purpose, while still covered
/// and within their TTL.
enum FeatureService {
    static let valuesPerWriteMax = 256

    enum WithholdReason: String {
        case noConsent = "no_consent"
        case expired
    }

    /// Defines (or redefines) a feature; 409 `definition_in_use` when stored values depend on its type and purpose.
    static func define(_ definition: FeatureDefinition, call: CallContext) async throws -> FeatureRecords.Upsert {
        let outcome = try await call.services.store.write { database -> FeatureRecords.Upsert in
            let outcome = try FeatureRecords.upsert(definition, now: call.now, in: database)
            if case .inUse = outcome { return outcome }
            try AuditLog.append(call.event("feature.define", purpose: definition.purpose.rawValue, detail: "feature=\(definition.name)"),
                                to: database)
            return outcome
        }
        if case .inUse(let count) = outcome {
            throw DomainError(.conflict, code: "definition_in_use",
                              detail: "\(count) stored values have this feature's type and purpose; define a new feature instead")
        }
        return outcome
    }

    /// Writes values for one subject, all or nothing; returns the definitions written.
    static func write(_ values: [(name: Name, value: FeatureValue, field: String)], for pid: PID,
                      call: CallContext) async throws -> [FeatureDefinition] {
        let services = call.services
        return try await services.writeAudited(call, action: "feature.write", pid: pid) { database -> [FeatureDefinition] in
            let written = try store(values, for: pid, services: services, now: call.now, in: database)
            try AuditLog.append(call.event("feature.write", pid: pid.rawValue, purpose: purposeField(written),
                                           detail: "written=\(written.count)"), to: database)
            return written
        }
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
        let grounds = try services.consentGate.requireCoverage(of: Set(typed.map(\.0.purpose)), grants: grants, now: now)
        var random = services.random.generator()
        try FeatureRecords.write(typed.map { ($0, $1, grounds[$0.purpose]!) }, pid: pid, key: key, now: now, using: &random, in: database)
        return typed.map(\.0)
    }

    static func purposeField(_ definitions: [FeatureDefinition]) -> String? {
        let purposes = Set(definitions.map(\.purpose.rawValue)).sorted()
        return purposes.isEmpty ? nil : purposes.joined(separator: ",")
    }

    /// The subject's features for `purpose`: those served, and those withheld with why.
    static func read(_ pid: PID, purpose: Purpose, call: CallContext) async throws -> (features: [StoredFeature], withheld: [(Name, WithholdReason)]) {
        let services = call.services
        let now = call.now
        let (features, withheld) = try await services.readSubject(pid, action: "feature.read", call: call) { database in
            let definitions = try FeatureRecords.definitions(for: purpose, in: database)
            let grants = try ConsentRecords.activeGrants(of: pid, in: database)
            guard services.consentGate.coverage(of: purpose, grants: grants, now: now).isCovered else {
                // Nothing is decrypted for a purpose the subject does not cover.
                return ([StoredFeature](), definitions.map { ($0.name, WithholdReason.noConsent) })
            }
            guard let key = try SubjectRecords.key(of: pid, keys: services.keys, in: database) else { return ([], []) }
            let stored = try FeatureRecords.values(of: pid, purpose: purpose, key: key, in: database)
            let defined = Set(definitions.map(\.name))
            let current = stored.filter { defined.contains($0.name) }
            return (current.filter { now < $0.expiresAt }, current.filter { now >= $0.expiresAt }.map { ($0.name, WithholdReason.expired) })
        }
        try await services.audit(call.event("feature.read", pid: pid.rawValue, purpose: purpose.rawValue,
                                            detail: "returned=\(features.count),withheld=\(withheld.count)"))
        return (features, withheld)
    }
}
