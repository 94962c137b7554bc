import DomicileModel
import DomicileNet

/// Aggregates as CSV (`Accept: text/csv`), for BI tools: one row per region
/// and category, and the global row, with the noise and a 95% interval —
/// the released numbers and nothing else (RFC 4180; docs/HTTP.md,
/// "Aggregates as CSV").
enum AggregateCSV {
    static let contentType = "text/csv; charset=utf-8"
    static let header = ["scope", "region", "release_id", "name", "kind", "category", "value", "noise_scale", "interval_level",
                         "interval_low", "interval_high", "epsilon", "delta", "released_at"]

    /// Whether the client asked for CSV.
    static func isWanted(_ request: HTTPRequest) -> Bool {
        request.headers["accept"]?.lowercased().contains("text/csv") == true
    }

    /// Each release's rows (`scope` region).
    static func rows(of release: Release) -> [[String]] {
        let half = GlobalAggregate.intervalZ * release.noiseScale
        return values(release.result).map { category, value in
            ["region", release.region, release.releaseID, release.name, release.kind, category ?? "", number(value),
             number(release.noiseScale), number(GlobalAggregate.intervalLevel), number(value - half), number(value + half),
             number(release.epsilon), number(release.delta), release.releasedAt.rfc3339]
        }
    }

    /// The global view: every region's rows, then the combination's (`scope` global).
    static func rows(of view: GlobalAggregate) -> [[String]] {
        let half = view.intervalHalfWidth
        return view.releases.flatMap(rows(of:)) + values(view.result).map { category, value in
            ["global", "", "", view.name, view.kind, category ?? "", number(value), number(view.noiseScale),
             number(GlobalAggregate.intervalLevel), number(value - half), number(value + half), number(view.epsilon), number(view.delta), ""]
        }
    }

    static func response(_ rows: [[String]]) -> HTTPResponse {
        HTTPResponse(status: 200, headers: ["Content-Type": contentType], body: Array(document(rows).utf8))
    }

    /// The header line and the rows, each line ended by CRLF.
    static func document(_ rows: [[String]]) -> String {
        ([header] + rows).map { $0.map(field).joined(separator: ",") + "\r\n" }.joined()
    }

    /// One field: quoted when it holds a comma, a quote or a line break; a
    /// text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) is
    /// prefixed with `'` (numbers are written by `number`, never so).
    static func field(_ text: String) -> String {
        var text = text
        if let first = text.first, "=+-@".contains(first), Double(text) == nil { text = "'" + text }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func number(_ value: Double) -> String { value.isFinite ? "\(value)" : "" }

    private static func values(_ result: AggregateResult) -> [(String?, Double)] {
        switch result {
        case .value(let value): return [(nil, value)]
        case .values(let categories): return categories.map { ($0.0, $0.1) }
        }
    }
}
