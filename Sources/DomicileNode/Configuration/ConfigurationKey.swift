/// Any key of a configuration object: for the names an operator chooses
/// (`limits.privacy_label_caps.crm`) and for finding keys no field reads.
struct ConfigurationKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }

    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }

    /// A field's dotted path in the file: `limits.privacy_label_caps.crm.epsilon`.
    static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map(\.stringValue).joined(separator: ".")
    }
}
