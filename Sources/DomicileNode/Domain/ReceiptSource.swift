import DomicilePrivacy

/// What a receipt records as its `source`: the client's text when it may be
/// kept, else a marker saying why it was not.
///
/// The text is stored with the receipt and shown in its history, so it may
/// not identify anyone, and it must keep to a short, plain character set. A
/// grant whose source breaks either rule is refused (422). A revocation is
/// never refused for its source (DESIGN.md invariant 2): it is recorded with
/// the marker `redacted:<code>` instead, `<code>` being what a grant would
/// have been refused with, and the audit event says so (never the text).
/// Clients may not send a source starting with `redacted:`, so a marker is
/// always the node's.
enum ReceiptSource {
    static let bytesMax = 128
    static let markerPrefix = "redacted:"

    /// Why a source cannot be kept as sent.
    enum Flaw: Sendable, Equatable {
        /// Empty, over 128 bytes, a character outside letters, digits and
        /// `. _ : / + -`, or the reserved `redacted:` prefix.
        case invalid
        /// Shaped like an identifier (PIIClassifier).
        case identifier(PIIClassifier.Kind)

        /// The problem code a grant is refused with.
        var code: String {
            switch self {
            case .invalid: "invalid_request"
            case .identifier: "pii_detected"
            }
        }

        /// What a revocation records instead of the text.
        var marker: String { ReceiptSource.markerPrefix + code }

        func refusal(field: String) -> DomainError {
            switch self {
            case .invalid:
                DomainError.invalid(field, "1-\(ReceiptSource.bytesMax) characters of letters, digits and . _ : / + -, not starting with \(ReceiptSource.markerPrefix)")
            case .identifier(let kind):
                FeatureService.piiDetected(field: field, kind: kind)
            }
        }
    }

    /// Nil when `text` may be stored as it is. An identifier is recognized
    /// before the character rules, so an e-mail address (whose `@` breaks
    /// them) is named as what it is.
    static func flaw(of text: String) -> Flaw? {
        let bytes = text.utf8
        guard (1...bytesMax).contains(bytes.count) else { return .invalid }
        if let kind = PIIClassifier.classify(text) { return .identifier(kind) }
        guard bytes.allSatisfy(isAllowed), !text.hasPrefix(markerPrefix) else { return .invalid }
        return nil
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "._:/+-".utf8.contains(byte)
        }
    }
}
