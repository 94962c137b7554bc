/// The kinds of identifier a subject can be registered under.
public enum IdentifierKind: String, CaseIterable, Codable, Sendable {
    case email
    case phone
    case customerID = "customer_id"

    /// Stable one-byte tag used in HMAC inputs and binary formats. Append-only.
    public var tag: UInt8 {
        switch self {
        case .email: return 1
        case .phone: return 2
        case .customerID: return 3
        }
    }

    public init?(tag: UInt8) {
        guard let kind = Self.allCases.first(where: { $0.tag == tag }) else { return nil }
        self = kind
    }
}

/// An identifier in its normalized form: the only form that is ever
/// pseudonymized, linked or encrypted, so that `Alice@Example.com ` and
/// `alice@example.com` are one subject.
///
/// `description` never prints the value: identifiers stay out of logs even by
/// accident.
public struct Identifier: Hashable, Sendable, CustomStringConvertible {
    public static let emailBytesMax = 254
    public static let emailLocalBytesMax = 64
    public static let customerIDBytesMax = 128
    /// E.164 allows at most 15 digits; the shortest real numbers have 7 or 8.
    public static let phoneDigitsMin = 7
    public static let phoneDigitsMax = 15

    public let kind: IdentifierKind
    public let value: String

    /// Normalizes and validates `raw`; the error names the rule, never the value.
    public init(kind: IdentifierKind, raw: String) throws(ModelError) {
        self.kind = kind
        switch kind {
        case .email: value = try Self.normalizeEmail(raw)
        case .phone: value = try Self.normalizePhone(raw)
        case .customerID: value = try Self.validateCustomerID(raw)
        }
    }

    /// Rebuilds an identifier that was normalized before (e.g. decrypted from
    /// the identity map) without normalizing it again.
    public init(kind: IdentifierKind, normalized: String) {
        self.kind = kind
        self.value = normalized
    }

    /// `kind tag · 0x00 · UTF-8 value`: the input of pseudonym and link HMACs.
    /// The kind is part of it so an e-mail and a customer id spelled alike
    /// never collide.
    public var hmacInput: [UInt8] {
        var bytes = [kind.tag, 0]
        bytes.append(contentsOf: value.utf8)
        return bytes
    }

    /// Calls `body` with the HMAC input in a temporary buffer (no heap
    /// allocation for ordinary identifiers). Not generic on purpose: it is
    /// called across modules on the pseudonymization hot path, where an
    /// unspecialized generic would pay for runtime metadata lookups.
    public func withHMACInput(_ body: (UnsafeRawBufferPointer) -> Void) {
        var value = value
        value.withUTF8 { utf8 in
            withUnsafeTemporaryAllocation(byteCount: utf8.count + 2, alignment: 1) { buffer in
                buffer[0] = kind.tag
                buffer[1] = 0
                UnsafeMutableRawBufferPointer(rebasing: buffer[2...]).copyMemory(from: UnsafeRawBufferPointer(utf8))
                body(UnsafeRawBufferPointer(buffer))
            }
        }
    }

    public var description: String { "Identifier(\(kind.rawValue), redacted)" }

    static func normalizeEmail(_ raw: String) throws(ModelError) -> String {
        let trimmed = trimASCIIWhitespace(raw)
        let bytes = Array(trimmed.utf8).map { ASCII.isUppercaseLetter($0) ? $0 + 32 : $0 }
        guard !bytes.isEmpty, bytes.count <= emailBytesMax else {
            throw .invalidIdentifier(kind: .email, reason: "length must be 3-254 bytes")
        }
        let at = UInt8(ascii: "@")
        guard bytes.filter({ $0 == at }).count == 1, let atIndex = bytes.firstIndex(of: at) else {
            throw .invalidIdentifier(kind: .email, reason: "must contain exactly one @")
        }
        let local = bytes[..<atIndex]
        let domain = bytes[(atIndex + 1)...]
        guard !local.isEmpty, local.count <= emailLocalBytesMax else {
            throw .invalidIdentifier(kind: .email, reason: "local part must be 1-64 bytes")
        }
        guard local.allSatisfy(isEmailLocalByte), local.first != UInt8(ascii: "."),
              local.last != UInt8(ascii: "."), !containsDoubleDot(local) else {
            throw .invalidIdentifier(kind: .email, reason: "local part has characters an address cannot have")
        }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy(isDomainLabel) else {
            throw .invalidIdentifier(kind: .email, reason: "domain must be dot-separated labels")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func normalizePhone(_ raw: String) throws(ModelError) -> String {
        var digits = [UInt8]()
        var sawPlus = false
        for byte in trimASCIIWhitespace(raw).utf8 {
            switch byte {
            case UInt8(ascii: "+") where !sawPlus && digits.isEmpty:
                sawPlus = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                digits.append(byte)
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"):
                continue
            default:
                throw .invalidIdentifier(kind: .phone, reason: "only digits and + ( ) - . separators are allowed")
            }
        }
        guard sawPlus else {
            throw .invalidIdentifier(kind: .phone, reason: "must be in E.164 form, starting with + and the country code")
        }
        guard (phoneDigitsMin...phoneDigitsMax).contains(digits.count), digits.first != UInt8(ascii: "0") else {
            throw .invalidIdentifier(kind: .phone, reason: "E.164 numbers have 7-15 digits and no leading zero")
        }
        return "+" + String(decoding: digits, as: UTF8.self)
    }

    static func validateCustomerID(_ raw: String) throws(ModelError) -> String {
        let count = raw.utf8.count
        guard count >= 1, count <= customerIDBytesMax else {
            throw .invalidIdentifier(kind: .customerID, reason: "must be 1-128 bytes")
        }
        guard !raw.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalidIdentifier(kind: .customerID, reason: "control characters are not allowed")
        }
        return raw
    }

    private static func trimASCIIWhitespace(_ text: String) -> Substring {
        let utf8 = text.utf8
        guard let start = utf8.firstIndex(where: { !ASCII.isWhitespace($0) }),
              let end = utf8.lastIndex(where: { !ASCII.isWhitespace($0) }) else { return "" }
        return text[start...end]
    }

    private static func isEmailLocalByte(_ byte: UInt8) -> Bool {
        if ASCII.isLowercaseLetter(byte) || ASCII.isDigit(byte) { return true }
        return Array("!#$%&'*+-/=?^_`{|}~.".utf8).contains(byte)
    }

    private static func containsDoubleDot(_ bytes: ArraySlice<UInt8>) -> Bool {
        zip(bytes, bytes.dropFirst()).contains { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }
    }

    private static func isDomainLabel(_ label: ArraySlice<UInt8>) -> Bool {
        guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"),
              label.last != UInt8(ascii: "-") else { return false }
        return label.allSatisfy { ASCII.isLowercaseLetter($0) || ASCII.isDigit($0) || $0 == UInt8(ascii: "-") }
    }
}
