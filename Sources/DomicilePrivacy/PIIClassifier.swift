import DomicileModel

/// Recognizes identifiers in free text, so they are refused where only
/// non-identifying data may go (feature values, event fields). It errs on the
/// side of refusing: a value that merely looks like an e-mail address or a
/// phone number is refused, and says which kind it resembled — never the value.
public enum PIIClassifier {
    public enum Kind: String, Sendable, Equatable {
        case email
        case phone
        case paymentCard = "payment_card"
        case iban
    }

    public static func classify(_ text: String) -> Kind? {
        let bytes = Array(text.utf8)
        if containsEmail(bytes) { return .email }
        if containsIBAN(bytes) { return .iban }
        if containsCard(bytes) { return .paymentCard }
        if containsPhone(bytes) { return .phone }
        return nil
    }

    /// `something@label.label`: an @ with a local part before it and a dotted
    /// domain after it.
    static func containsEmail(_ bytes: [UInt8]) -> Bool {
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "@") {
            let before = index > 0 ? bytes[index - 1] : 0
            guard ASCII.isAlphanumeric(before) || "._%+-".utf8.contains(before) else { continue }
            var domain = bytes[(index + 1)...].prefix { ASCII.isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
            while domain.last == UInt8(ascii: ".") { domain.removeLast() }
            let labels = domain.split(separator: UInt8(ascii: "."))
            if labels.count >= 2, let last = labels.last, last.count >= 2, last.allSatisfy({ !ASCII.isDigit($0) }) { return true }
        }
        return false
    }

    /// A run of digits as people write numbers: the digits, the sizes of
    /// the groups between separators, the separators used, and whether a
    /// `+` led it.
    struct DigitRun {
        var digits: [UInt8] = []
        var groups: [Int] = []
        var separators: Set<UInt8> = []
        var plus = false
    }

    /// Runs of digits, allowing up to two separator characters between
    /// groups (`") "`, `" - "`) and a leading `(`.
    static func digitRuns(_ bytes: [UInt8], separators allowed: Set<UInt8>) -> [DigitRun] {
        var runs: [DigitRun] = []
        var current = DigitRun()
        var group = 0
        var pendingSeparators = 0
        func finish() {
            if group > 0 { current.groups.append(group) }
            if !current.digits.isEmpty { runs.append(current) }
            current = DigitRun()
            group = 0
            pendingSeparators = 0
        }
        for byte in bytes {
            if ASCII.isDigit(byte) {
                if pendingSeparators > 0 && group > 0 {
                    current.groups.append(group)
                    group = 0
                }
                current.digits.append(byte)
                group += 1
                pendingSeparators = 0
            } else if current.digits.isEmpty && (byte == UInt8(ascii: "+") || byte == UInt8(ascii: "(")) {
                if byte == UInt8(ascii: "+") { current.plus = true }
            } else if allowed.contains(byte) && !current.digits.isEmpty && pendingSeparators < 2 {
                pendingSeparators += 1
                current.separators.insert(byte)
            } else {
                finish()
                if byte == UInt8(ascii: "+") { current.plus = true }
            }
        }
        finish()
        return runs
    }

    /// 13-19 digits (spaces and dashes allowed) passing the Luhn check.
    static func containsCard(_ bytes: [UInt8]) -> Bool {
        digitRuns(bytes, separators: [UInt8(ascii: " "), UInt8(ascii: "-")]).contains { run in
            (13...19).contains(run.digits.count) && luhn(run.digits)
        }
    }

    static func luhn(_ digits: [UInt8]) -> Bool {
        var sum = 0
        for (offset, byte) in digits.reversed().enumerated() {
            var value = Int(byte - 0x30)
            if offset % 2 == 1 {
                value *= 2
                if value > 9 { value -= 9 }
            }
            sum += value
        }
        return sum % 10 == 0
    }

    /// An international phone number (`+` and 7-15 digits) or a national
    /// one (9-15 digits), but not a date (`2026-11-22`) or an IPv4 address.
    /// Long digit strings without separators count: a 10-digit customer
    /// number is refused as a phone number, which errs on the safe side.
    static func containsPhone(_ bytes: [UInt8]) -> Bool {
        digitRuns(bytes, separators: [UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: ")")]).contains { run in
            if run.plus { return (7...15).contains(run.digits.count) }
            guard (9...15).contains(run.digits.count) else { return false }
            let looksLikeDate = run.groups.count >= 3 && run.groups[0] == 4 && run.groups[1] <= 2 && run.groups[2] <= 2
                && run.separators.isSubset(of: [UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: " ")])
            let looksLikeIPv4 = run.groups.count == 4 && run.groups.allSatisfy { $0 <= 3 } && run.separators == [UInt8(ascii: ".")]
            return !looksLikeDate && !looksLikeIPv4
        }
    }

    /// Two letters, two check digits, 11-30 letters or digits (spaces
    /// allowed), passing ISO 13616's mod-97 check.
    static func containsIBAN(_ bytes: [UInt8]) -> Bool {
        let compact = bytes.filter { $0 != UInt8(ascii: " ") }.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 32 : $0 }
        guard compact.count >= 15 else { return false }
        for start in 0...(compact.count - 15) {
            guard (0x41...0x5A).contains(compact[start]), (0x41...0x5A).contains(compact[start + 1]),
                  ASCII.isDigit(compact[start + 2]), ASCII.isDigit(compact[start + 3]) else { continue }
            let body = compact[start...].prefix { ASCII.isAlphanumeric($0) }
            for length in stride(from: min(body.count, 34), through: 15, by: -1) where mod97(Array(body.prefix(length))) == 1 {
                return true
            }
        }
        return false
    }

    private static func mod97(_ candidate: [UInt8]) -> Int {
        let rearranged = candidate[4...] + candidate[0..<4]
        var remainder = 0
        for byte in rearranged {
            let value = ASCII.isDigit(byte) ? Int(byte - 0x30) : Int(byte - 0x41) + 10
            remainder = (remainder * (value >= 10 ? 100 : 10) + value) % 97
        }
        return remainder
    }
}
