import DomicileNet

/// The answer of a batch write (200): per item, in the order sent, the
/// status its single call would have answered and either what that call
/// returns or its problem's `code`, `detail` and extensions:
/// `{"count":3,"succeeded":2,"failed":1,"results":[{"index":0,"status":201,…},
/// {"index":1,"status":421,"code":"misdirected","detail":…,"home_region":…},…]}`.
struct BatchResults<Value: Sendable>: JSONWritable {
    let results: [Result<Value, DomainError>]
    let writeValue: (inout JSONWriter, Value) -> Void
    let status: (Value) -> Int

    init(_ results: [Result<Value, DomainError>], _ writeValue: @escaping (inout JSONWriter, Value) -> Void,
         status: @escaping (Value) -> Int = { _ in 200 }) {
        self.results = results
        self.writeValue = writeValue
        self.status = status
    }

    func write(to json: inout JSONWriter) {
        let failed = results.filter { if case .failure = $0 { true } else { false } }.count
        json.object { json in
            json.member("count", results.count)
            json.member("succeeded", results.count - failed)
            json.member("failed", failed)
            json.key("results")
            json.array(results.enumerated()) { json, item in
                json.object { json in
                    json.member("index", item.offset)
                    switch item.element {
                    case .success(let value):
                        json.member("status", status(value))
                        writeValue(&json, value)
                    case .failure(let refusal):
                        json.member("status", refusal.status)
                        json.member("code", refusal.code)
                        json.member("detail", refusal.detail)
                        for (name, value) in refusal.extensions.sorted(by: { $0.key < $1.key }) {
                            json.key(escaping: name)
                            json.value(value)
                        }
                    }
                }
            }
        }
    }
}

extension JSONWriter {
    /// Writes an open-ended value (a problem's extension).
    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): self.value(flag)
        case .number(let number): self.value(number)
        case .string(let text): self.value(text)
        case .array(let elements): array(elements) { $0.value($1) }
        case .object(let members):
            object { json in
                for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                    json.key(escaping: name)
                    json.value(member)
                }
            }
        }
    }
}
