import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

/// Event contracts (minimization at ingestion): an allowlist of fields with
/// their types and transforms, mapped to features. Events are checked and
/// minimized before anything is stored.
enum ContractService {
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

    /// Stores a contract under `name`; returns whether it is new.
    static func define(_ contract: NamedContract, call: CallContext) async throws -> Bool {
        try await call.services.store.write { database -> Bool in
            try checkFeatures(contract.contract, in: database)
            let created = try ContractRecords.save(contract, now: call.now, in: database)
            try AuditLog.append(call.event("contract.define", detail: "contract=\(contract.name)"), to: database)
            return created
        }
    }

    /// An event minimized by its contract: what it feeds, or the refusal
    /// (unknown contract, field not allowed, PII…). Checked before the pid
    /// is resolved, so a malformed event is refused as such in every region
    /// and never answered 421 (which would invite sending it elsewhere).
    static func minimize(_ values: [String: EventContract.Value], contract name: Name,
                         services: NodeServices) throws -> [EventContract.Update] {
        guard let contract = try services.store.read({ try ContractRecords.find(name, in: $0) }) else {
            throw DomainError(.notFound, code: "unknown_contract", detail: "no event contract with this name")
        }
        do { return try contract.minimize(values) } catch { throw problem(error) }
    }

    /// Stores what a minimized event feeds for the subject, all or nothing;
    /// returns the features written.
    static func ingest(_ updates: [EventContract.Update], pid: PID, contract name: Name,
                       call: CallContext) async throws -> [FeatureDefinition] {
        let services = call.services
        let toStore = updates.map { (name: $0.feature, value: $0.value, field: "fields.\($0.field)") }
        return try await services.writeAudited(call, action: "event.ingest", pid: pid) { database -> [FeatureDefinition] in
            let written = try FeatureService.store(toStore, for: pid, services: services, now: call.now, in: database)
            try AuditLog.append(call.event("event.ingest", pid: pid.rawValue, purpose: FeatureService.purposeField(written),
                                           detail: "contract=\(name),written=\(written.count)"), to: database)
            return written
        }
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
            return FeatureService.piiDetected(field: "fields.\(field)", kind: kind)
        case .invalidValue(let field, let reason):
            return DomainError(.invalid, code: "invalid_field", detail: "fields.\(field): \(reason)")
        }
    }
}
