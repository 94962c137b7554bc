import DomicileModel
import DomicileNet
import DomicilePrivacy
import Foundation

/// A contract's canonical JSON document: what `PUT /v1/contracts/{name}`
/// accepts and the API serves, and what SQLite stores. Parsing it checks
/// the contract on its own (not yet against the feature definitions).
struct ContractDocument: Codable, Sendable {
    struct Field: Codable, Sendable {
        let type: String
        let feature: String?
        let transform: String?
        let identity: Bool?
    }

    let fields: [String: Field]

    /// Field names and map keys are case-sensitive: no key conversion.
    static let decoder = JSONDecoder()

    /// The contract a body describes, checked on its own (not yet against
    /// the feature definitions).
    func contract() throws(DomainError) -> EventContract {
        var checked: [String: EventContract.Field] = [:]
        for (name, field) in fields {
            let path = EventContract.isFieldName(name) ? "fields.\(name)" : "fields"
            guard let type = EventContract.FieldType(rawValue: field.type) else {
                throw Self.invalidContract("\(path).type", "must be string, number, bool or timestamp")
            }
            var feature: Name?
            if let text = field.feature {
                guard let name = try? Name(text, what: "feature name") else { throw Self.invalidContract("\(path).feature", "is not a feature name") }
                feature = name
            }
            var transform: Transform?
            if let text = field.transform {
                guard let known = Transform(rawValue: text) else {
                    throw Self.invalidContract("\(path).transform", "must be bucket_day, bucket_hour, ip_prefix, coarse_geo or drop")
                }
                transform = known
            }
            checked[name] = EventContract.Field(type: type, feature: feature, transform: transform, identity: field.identity ?? false)
        }
        do { return try EventContract(fields: checked) } catch { throw Self.invalidContract(error.field, error.reason) }
    }

    static func invalidContract(_ field: String, _ reason: String) -> DomainError {
        DomainError(.invalid, code: "invalid_contract", detail: "\(field): \(reason)")
    }

}
