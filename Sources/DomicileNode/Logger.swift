import DomicileModel
import Foundation

/// Structured log lines, one JSON object per line on standard output. Fields
/// carry pids, codes, counts and durations — never an identifier, a feature
/// value or a vector.
public final class Logger: Sendable {
    public enum Level: String, Sendable { case debug, info, warning, error }

    public enum Value: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
        case string(String)
        case int(Int64)
        case double(Double)
        case bool(Bool)

        public init(stringLiteral value: String) { self = .string(value) }
        public init(integerLiteral value: Int64) { self = .int(value) }

        var json: String {
            switch self {
            case .string(let text): return Logger.quote(text)
            case .int(let number): return String(number)
            case .double(let number): return number.isFinite ? String(format: "%.3f", number) : "null"
            case .bool(let flag): return flag ? "true" : "false"
            }
        }
    }

    private let clock: any Clock
    private let lock = NSLock()
    private let descriptor: Int32

    public init(clock: any Clock, descriptor: Int32 = STDOUT_FILENO) {
        self.clock = clock
        self.descriptor = descriptor
    }

    public func log(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, Value> = [:]) {
        var line = #"{"at":"\#(clock.now().rfc3339)","level":"\#(level.rawValue)","event":\#(Self.quote(event))"#
        for (key, value) in fields { line += ",\(Self.quote(key)):\(value.json)" }
        line += "}\n"
        lock.lock()
        defer { lock.unlock() }
        line.withUTF8 { utf8 in
            var offset = 0
            while offset < utf8.count {
                let written = write(descriptor, utf8.baseAddress! + offset, utf8.count - offset)
                if written <= 0 { if errno == EINTR { continue } else { return } }
                offset += written
            }
        }
    }

    public func info(_ event: String, _ fields: KeyValuePairs<String, Value> = [:]) { log(.info, event, fields) }
    public func warning(_ event: String, _ fields: KeyValuePairs<String, Value> = [:]) { log(.warning, event, fields) }
    public func error(_ event: String, _ fields: KeyValuePairs<String, Value> = [:]) { log(.error, event, fields) }

    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// The wall clock.
public struct SystemClock: Clock {
    public init() {}

    public func now() -> Timestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Timestamp(milliseconds: Int64(now.tv_sec) * 1_000 + Int64(now.tv_nsec) / 1_000_000)
    }
}
