import DomicileModel

/// A region's digest: per origin region, the highest sequence number up to
/// which it holds every entry (its contiguous prefix). An origin not listed
/// is at 0.
public struct VersionVector: Sendable, Equatable, CustomStringConvertible {
    /// Regions a vector may name (the codec's bound).
    public static let regionsMax = 256

    public private(set) var seqs: [RegionID: UInt64]

    public init(_ seqs: [RegionID: UInt64] = [:]) {
        self.seqs = seqs.filter { $0.value > 0 }
    }

    public subscript(origin: RegionID) -> UInt64 {
        get { seqs[origin] ?? 0 }
        set { seqs[origin] = newValue > 0 ? newValue : nil }
    }

    /// The origins in the codec's order (UTF-8 bytes of the region id).
    public var origins: [RegionID] { seqs.keys.sorted() }

    public var description: String {
        "{" + origins.map { "\($0):\(self[$0])" }.joined(separator: " ") + "}"
    }
}
