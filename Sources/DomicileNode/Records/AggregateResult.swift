import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// A released aggregate's noised result: one value, or one per category.
enum AggregateResult: Sendable, Equatable {
    case value(Double)
    case values([(String, Double)])

    static func == (a: AggregateResult, b: AggregateResult) -> Bool {
        switch (a, b) {
        case (.value(let x), .value(let y)): return x == y
        case (.values(let x), .values(let y)): return x.map(\.0) == y.map(\.0) && x.map(\.1) == y.map(\.1)
        default: return false
        }
    }

    func write(to json: inout JSONWriter) {
        switch self {
        case .value(let value):
            json.member("value", value)
        case .values(let values):
            json.key("values")
            json.object { json in
                for (category, value) in values {
                    json.key(escaping: category)
                    json.value(value)
                }
            }
        }
    }

    /// Stored as the same JSON the API shows.
    var encoded: String {
        var json = JSONWriter()
        json.object { write(to: &$0) }
        return String(decoding: json.bytes, as: UTF8.self)
    }

    init?(encoded: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(encoded.utf8)) as? [String: Any] else { return nil }
        if let value = object["value"] as? Double { self = .value(value); return }
        guard let values = object["values"] as? [String: Double] else { return nil }
        self = .values(values.sorted { $0.key < $1.key })
    }
}
