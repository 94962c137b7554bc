/// Latencies in a Prometheus histogram: counts per upper bound, sum, count.
struct LatencySummary: Sendable {
    static let boundsMilliseconds: [Double] = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000]

    private(set) var bucketCounts = [Int](repeating: 0, count: boundsMilliseconds.count)
    private(set) var count = 0
    private(set) var sumMicroseconds: Int64 = 0

    mutating func record(_ microseconds: Int64) {
        let value = max(0, microseconds)
        count += 1
        sumMicroseconds += value
        if let bucket = Self.boundsMilliseconds.firstIndex(where: { Double(value) <= $0 * 1_000 }) { bucketCounts[bucket] += 1 }
    }
}
