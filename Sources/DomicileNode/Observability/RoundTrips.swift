import DomicileModel
import Foundation

/// The round trips this node measured to each peer region, two ways:
/// `gossip`, a direct probe of the federation pool (ping to ack over UDP),
/// and `federation`, an exchange of the federation sync over HTTP, less the
/// time the answering node reports it spent (`Server-Timing`). The last
/// `kept` of each are kept; `GET /v1/cluster` reports the last and the
/// median (docs/HTTP.md). Whatever shapes the links (`wan`, netem, a real
/// WAN) shows here.
final class RoundTrips: Sendable {
    enum Way: String, Sendable, Encodable, CaseIterable {
        case gossip
        case federation
    }

    struct Summary: Encodable, Equatable {
        let region: RegionID
        let way: Way
        let lastMs: Double
        let medianMs: Double
        /// Measurements the median is taken over (at most `kept`).
        let samples: Int
    }

    private struct Key: Hashable, Sendable {
        let region: RegionID
        let way: Way
    }

    static let kept = 9
    private let samples = Locked<[Key: [Double]]>([:])

    func record(milliseconds: Double, to region: RegionID, by way: Way) {
        guard milliseconds >= 0, milliseconds.isFinite else { return }
        samples.withLock { samples in
            var recent = samples[Key(region: region, way: way), default: []]
            recent.append(milliseconds)
            if recent.count > Self.kept { recent.removeFirst(recent.count - Self.kept) }
            samples[Key(region: region, way: way)] = recent
        }
    }

    /// One summary per region and way measured, by region then way.
    func summaries() -> [Summary] {
        samples.value.map { key, recent in
            let sorted = recent.sorted()
            let middle = sorted.count / 2
            let median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
            return Summary(region: key.region, way: key.way, lastMs: Self.rounded(recent.last!), medianMs: Self.rounded(median),
                           samples: recent.count)
        }.sorted { ($0.region.rawValue, $0.way.rawValue) < ($1.region.rawValue, $1.way.rawValue) }
    }

    private static func rounded(_ milliseconds: Double) -> Double { (milliseconds * 100).rounded() / 100 }
}
