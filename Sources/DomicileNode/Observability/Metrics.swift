import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// Counters and histograms in Prometheus text format (`GET /metrics`).
/// Labels are route patterns, methods, status codes, actions and outcomes:
/// never a pid, an identifier or a value.
public final class Metrics: Sendable {
    static let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    struct Histogram: Sendable {
        var counts = [Int](repeating: 0, count: Metrics.latencyBuckets.count)
        var sum = 0.0
        var count = 0

        mutating func observe(_ seconds: Double) {
            if let bucket = Metrics.latencyBuckets.firstIndex(where: { seconds <= $0 }) { counts[bucket] += 1 }
            sum += seconds
            count += 1
        }
    }

    private struct RequestKey: Hashable, Sendable {
        let method: String
        let route: String
        let status: Int
    }

    private struct AuditKey: Hashable, Sendable {
        let action: String
        let outcome: String
    }

    private struct State: Sendable {
        var requests: [RequestKey: Int] = [:]
        var latency: [String: Histogram] = [:]
        var audit: [AuditKey: Int] = [:]
        var counters: [String: Int] = [:]
    }

    private let state = Locked(State())

    public init() {}

    func record(_ exchange: HTTPExchange) {
        let key = RequestKey(method: exchange.method, route: exchange.route, status: exchange.status)
        let seconds = Double(exchange.durationMicroseconds) / 1_000_000
        state.withLock { state in
            state.requests[key, default: 0] += 1
            state.latency[exchange.route, default: Histogram()].observe(seconds)
        }
    }

    func countAudit(action: String, outcome: String) {
        let key = AuditKey(action: action, outcome: outcome)
        state.withLock { $0.audit[key, default: 0] += 1 }
    }

    /// Adds to a named counter with fixed labels, e.g. `domicile_audit_events_total{action="consent.read"}`.
    func increment(_ name: String, labels: KeyValuePairs<String, String> = [:], by amount: Int = 1) {
        let rendered = labels.isEmpty ? name : name + "{" + labels.map { #"\#($0.key)="\#(Self.escape($0.value))""# }.joined(separator: ",") + "}"
        state.withLock { $0.counters[rendered, default: 0] += amount }
    }

    /// `counters` and `gauges` are (name, help, value) kept by other owners.
    func render(writer: WriterStatistics, counters: [(String, String, Int)] = [], gauges: [(String, String, Double)]) -> String {
        let snapshot = state.value
        var lines: [String] = []
        lines.append("# HELP domicile_http_requests_total HTTP requests by method, route pattern and status.")
        lines.append("# TYPE domicile_http_requests_total counter")
        let requests = snapshot.requests.map { key, count in
            (#"method="\#(key.method)",route="\#(Self.escape(key.route))",status="\#(key.status)""#, count)
        }
        for (labels, count) in requests.sorted(by: { $0.0 < $1.0 }) {
            lines.append("domicile_http_requests_total{\(labels)} \(count)")
        }
        lines.append("# HELP domicile_audit_events_total Audit events appended, by action and outcome.")
        lines.append("# TYPE domicile_audit_events_total counter")
        let audit = snapshot.audit.map { key, count in
            (#"action="\#(Self.escape(key.action))",outcome="\#(Self.escape(key.outcome))""#, count)
        }
        for (labels, count) in audit.sorted(by: { $0.0 < $1.0 }) {
            lines.append("domicile_audit_events_total{\(labels)} \(count)")
        }
        lines.append("# HELP domicile_http_request_duration_seconds Time from a complete request to its response, by route pattern.")
        lines.append("# TYPE domicile_http_request_duration_seconds histogram")
        for (route, histogram) in snapshot.latency.sorted(by: { $0.key < $1.key }) {
            var cumulative = 0
            for (bound, count) in zip(Self.latencyBuckets, histogram.counts) {
                cumulative += count
                lines.append(#"domicile_http_request_duration_seconds_bucket{route="\#(Self.escape(route))",le="\#(bound)"} \#(cumulative)"#)
            }
            lines.append(#"domicile_http_request_duration_seconds_bucket{route="\#(Self.escape(route))",le="+Inf"} \#(histogram.count)"#)
            lines.append(#"domicile_http_request_duration_seconds_sum{route="\#(Self.escape(route))"} \#(histogram.sum)"#)
            lines.append(#"domicile_http_request_duration_seconds_count{route="\#(Self.escape(route))"} \#(histogram.count)"#)
        }
        lines.append("# HELP domicile_storage_commits_total Group commits made durable.")
        lines.append("# TYPE domicile_storage_commits_total counter")
        lines.append("domicile_storage_commits_total \(writer.commits)")
        lines.append("# HELP domicile_storage_committed_writes_total Write requests committed.")
        lines.append("# TYPE domicile_storage_committed_writes_total counter")
        lines.append("domicile_storage_committed_writes_total \(writer.committedRequests)")
        lines.append("# HELP domicile_storage_failed_writes_total Write requests that failed and were rolled back.")
        lines.append("# TYPE domicile_storage_failed_writes_total counter")
        lines.append("domicile_storage_failed_writes_total \(writer.failedRequests)")
        lines.append("# HELP domicile_storage_commit_batch_size Write requests per group commit.")
        lines.append("# TYPE domicile_storage_commit_batch_size histogram")
        var cumulative = 0
        for (bound, count) in zip(WriterStatistics.batchSizeBuckets, writer.batchSizeCounts) {
            cumulative += count
            lines.append(#"domicile_storage_commit_batch_size_bucket{le="\#(bound)"} \#(cumulative)"#)
        }
        cumulative += writer.batchSizeCounts.last ?? 0
        lines.append(#"domicile_storage_commit_batch_size_bucket{le="+Inf"} \#(cumulative)"#)
        lines.append("domicile_storage_commit_batch_size_sum \(writer.committedRequests)")
        lines.append("domicile_storage_commit_batch_size_count \(writer.commits)")
        var declared = Set<String>()
        for (name, count) in snapshot.counters.sorted(by: { $0.key < $1.key }) {
            let family = String(name.prefix { $0 != "{" })
            if declared.insert(family).inserted { lines.append("# TYPE \(family) counter") }
            lines.append("\(name) \(count)")
        }
        for (name, help, value) in counters {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) counter")
            lines.append("\(name) \(value)")
        }
        for (name, help, value) in gauges {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) gauge")
            lines.append("\(name) \(value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
