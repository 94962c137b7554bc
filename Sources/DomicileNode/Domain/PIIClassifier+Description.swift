import DomicilePrivacy

/// How a refusal names what a value looked like.
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
