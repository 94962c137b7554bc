import Foundation

/// The `Server-Timing` response header (W3C Server Timing): how long the
/// answering node spent on a request, `federation;dur=1.250` (milliseconds),
/// so the caller can take it out of the round trip it measures.
enum ServerTiming {
    static let header = "Server-Timing"

    static func value(metric: String, milliseconds: Double) -> String {
        "\(metric);dur=\(String(format: "%.3f", max(0, milliseconds)))"
    }

    /// The `dur` of `metric` in a header value (`a;dur=1, b;desc="x";dur=2.5`), or nil.
    static func milliseconds(_ value: String?, metric: String) -> Double? {
        guard let value else { return nil }
        for entry in value.split(separator: ",") {
            let parameters = entry.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parameters.first == metric else { continue }
            for parameter in parameters.dropFirst() where parameter.hasPrefix("dur=") {
                guard let duration = Double(parameter.dropFirst(4)), duration.isFinite, duration >= 0 else { return nil }
                return duration
            }
        }
        return nil
    }
}
