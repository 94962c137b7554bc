import DomicileNet
import DomicilePrivacy

/// A feature value as the API serves it.
extension FeatureValue {
    func write(to json: inout JSONWriter) {
        switch self {
        case .number(let number): json.value(number)
        case .string(let text): json.value(text)
        case .bool(let flag): json.value(flag)
        }
    }
}
