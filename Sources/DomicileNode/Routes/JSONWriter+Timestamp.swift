import DomicileModel
import DomicileNet

extension JSONWriter {
    mutating func member(_ name: StaticString, _ timestamp: Timestamp?) {
        member(name, timestamp?.rfc3339)
    }
}
