/// A point in time as Unix milliseconds, with RFC 3339 text in UTC.
///
/// Formatting and parsing are done here, with the civil-calendar algorithms
/// of Howard Hinnant's "chrono-compatible low-level date algorithms", rather
/// than with a Foundation formatter: they run for every receipt and audit
/// event, and this module stays free of Foundation.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }
    public init(seconds: Int64) { milliseconds = seconds * 1_000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    public func adding(milliseconds delta: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds + delta) }
    public func adding(seconds delta: Int64) -> Timestamp { adding(milliseconds: delta * 1_000) }

    /// `2026-11-22T10:00:00Z`, or with `.123` when the milliseconds are not zero.
    public var rfc3339: String {
        let (days, dayMilliseconds) = Self.floorDivide(milliseconds, 86_400_000)
        let (year, month, day) = Self.civil(fromDays: days)
        let seconds = dayMilliseconds / 1_000
        let fraction = dayMilliseconds % 1_000
        var text = "\(Self.pad(year, 4))-\(Self.pad(month, 2))-\(Self.pad(day, 2))T"
            + "\(Self.pad(seconds / 3_600, 2)):\(Self.pad(seconds / 60 % 60, 2)):\(Self.pad(seconds % 60, 2))"
        if fraction != 0 { text += ".\(Self.pad(fraction, 3))" }
        return text + "Z"
    }

    public var description: String { rfc3339 }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t`/`z` and a space
    /// for `T` are accepted (RFC 3339 section 5.6 note). Sub-millisecond digits are truncated.
    public init(rfc3339 text: String) throws(ModelError) {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ count: Int) throws(ModelError) -> Int64 {
            guard index + count <= bytes.count else { throw .invalidTimestamp }
            var value: Int64 = 0
            for _ in 0..<count {
                let byte = bytes[index]
                guard ASCII.isDigit(byte) else { throw .invalidTimestamp }
                value = value * 10 + Int64(byte - 0x30)
                index += 1
            }
            return value
        }
        func expect(_ options: String) throws(ModelError) {
            guard index < bytes.count, options.utf8.contains(bytes[index]) else { throw .invalidTimestamp }
            index += 1
        }
        let year = try number(4)
        try expect("-")
        let month = try number(2)
        try expect("-")
        let day = try number(2)
        try expect("Tt ")
        let hour = try number(2)
        try expect(":")
        let minute = try number(2)
        try expect(":")
        let second = try number(2)
        var fraction: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, ASCII.isDigit(bytes[index]) {
                if digits < 3 { fraction = fraction * 10 + Int64(bytes[index] - 0x30) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { throw .invalidTimestamp }
            for _ in digits..<max(digits, 3) { fraction *= 10 }
        }
        var offsetMinutes: Int64 = 0
        guard index < bytes.count else { throw .invalidTimestamp }
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign: Int64 = bytes[index] == UInt8(ascii: "+") ? 1 : -1
            index += 1
            let offsetHours = try number(2)
            try expect(":")
            let offsetRest = try number(2)
            guard offsetHours < 24, offsetRest < 60 else { throw .invalidTimestamp }
            offsetMinutes = sign * (offsetHours * 60 + offsetRest)
        default:
            throw .invalidTimestamp
        }
        guard index == bytes.count, (1...12).contains(month), day >= 1, day <= Self.daysIn(month: month, year: year),
              hour < 24, minute < 60, second < 60 else { throw .invalidTimestamp }
        let days = Self.days(fromCivil: year, month, day)
        let local = ((days * 24 + hour) * 60 + minute) * 60 + second
        milliseconds = (local - offsetMinutes * 60) * 1_000 + fraction
    }

    // Days since 1970-01-01 from a proleptic Gregorian date, and back.
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value >= 0 ? value / divisor : (value - divisor + 1) / divisor
        return (quotient, value - quotient * divisor)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
/// Where "now" comes from. Pure modules take a clock, so tests and the
/// simulator can set the time.
public protocol Clock: Sendable {
    func now() -> Timestamp
}
