import DomicileModel
import DomicileNet
import DomicilePrivacy
import Foundation

/// A contract as stored and served.
struct NamedContract: JSONWritable {
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
