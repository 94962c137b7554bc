import DomicileModel
import Foundation

/// Structured log lines, one JSON object per line on standard output. Fields
/// carry pids, codes, counts and durations — never an identifier, a feature
/// value or a vector.
///
/// `log` formats the line and queues it for a `LogWriter` thread, so a caller
/// on an event loop never waits for the pipe: when its reader falls behind,
/// lines beyond `Settings` are dropped, counted (`droppedLineCount`, in
/// `/metrics`) and reported by a `log_lines_dropped` line once the pipe
/// takes writes again.
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

    /// The log queue's limits. Memory held by logging is at most twice
    /// `queuedBytesMax` (the queue, and the batch being written).
    public struct Settings: Sendable {
        /// Lines waiting for the writer thread at most; past it lines are
        /// dropped and counted. 10,000 access-log lines is a fraction of a
        /// second of a busy node: a reader that stalls longer loses lines
        /// rather than stalling requests.
        public var queuedLinesMax = 10_000
        /// Bytes waiting at most (lines are ~150 bytes; this bounds a burst
        /// of unusually long ones).
        public var queuedBytesMax = 2 * 1_024 * 1_024
        /// How long `flush()` (at shutdown) waits for the reader to take
        /// what is queued before giving up on it.
        public var flushTimeoutMilliseconds: Int64 = 2_000

        public init() {}
    }

    static let droppedEvent = "log_lines_dropped"

    private let clock: any Clock
    private let settings: Settings
    private let writer: LogWriter

    /// Starts the writer thread for `descriptor`, which must stay open while
    /// the logger is used (the logger never closes it).
    public init(clock: any Clock, descriptor: Int32 = STDOUT_FILENO, settings: Settings = Settings()) {
        precondition(settings.queuedLinesMax >= 1 && settings.queuedBytesMax >= 1 && settings.flushTimeoutMilliseconds >= 0,
                     "logger limits must be positive")
        self.clock = clock
        self.settings = settings
        writer = LogWriter(descriptor: descriptor, linesMax: settings.queuedLinesMax, bytesMax: settings.queuedBytesMax) { count in
            Self.line(at: clock.now(), .warning, Self.droppedEvent, ["count": .int(Int64(count))])
        }
    }

    deinit { writer.close() }

    /// Queues the line and returns: never waits for the descriptor.
    public func log(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, Value> = [:]) {
        writer.submit(Self.line(at: clock.now(), level, event, fields))
    }

    /// Lines dropped since the start because the queue was full or the
    /// descriptor failed.
    public var droppedLineCount: Int { writer.droppedLineCount }

    /// Waits (at most `flushTimeoutMilliseconds`) until every line logged
    /// so far is written, so a process's last lines survive its exit.
    /// Returns false if the time ran out.
    @discardableResult
    public func flush() -> Bool {
        writer.flush(timeoutMilliseconds: settings.flushTimeoutMilliseconds)
    }

    /// One JSON object and its newline.
    static func line(at time: Timestamp, _ level: Level, _ event: String, _ fields: KeyValuePairs<String, Value>) -> String {
        var line = #"{"at":"\#(time.rfc3339)","level":"\#(level.rawValue)","event":\#(quote(event))"#
        for (key, value) in fields { line += ",\(quote(key)):\(value.json)" }
        return line + "}\n"
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
