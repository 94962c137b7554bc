import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage

struct IdentifierBody: Decodable, Sendable {
    let kind: String
    let value: String

    /// The normalized identifier, or 422 `invalid_identifier` naming the rule broken.
    func normalized() throws(DomainError) -> Identifier {
        guard let kind = IdentifierKind(rawValue: kind) else {
            throw DomainError.invalid("identifier.kind", "must be email, phone or customer_id", code: "invalid_identifier")
        }
        do { return try Identifier(kind: kind, raw: value) } catch { throw DomainError.invalidIdentifier(error) }
    }
}
