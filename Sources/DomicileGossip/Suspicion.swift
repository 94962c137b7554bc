import DomicileModel

/// A suspicion timer (Lifeguard's dynamic suspicion): it starts at the maximum
/// timeout and falls toward the minimum as independent members confirm it,
/// so a member many others cannot reach is declared dead sooner, and one only
/// a slow node suspects has time to refute.
struct Suspicion: Sendable {
    let incarnation: UInt64
    let startedAt: Int64
    let minimumMilliseconds: Int64
    let maximumMilliseconds: Int64
    /// Confirmations expected before the timeout reaches the minimum.
    let expectedConfirmations: Int
    /// The first accuser does not count as a confirmation.
    let firstAccuser: NodeName
    var confirmations: Set<NodeName> = []

    var deadline: Int64 { startedAt + Self.timeout(confirmations: confirmations.count, expected: expectedConfirmations,
                                                   minimum: minimumMilliseconds, maximum: maximumMilliseconds) }

    /// memberlist's `remainingSuspicionTime`:
    /// max(min, max − (max − min) · log(c + 1) / log(k + 1)).
    static func timeout(confirmations: Int, expected: Int, minimum: Int64, maximum: Int64) -> Int64 {
        guard expected >= 1, maximum > minimum else { return minimum }
        let fraction = log(Double(confirmations + 1)) / log(Double(expected + 1))
        let timeout = Double(maximum) - fraction * Double(maximum - minimum)
        return max(minimum, Int64(timeout.rounded(.down)))
    }

    /// memberlist's `suspicionTimeout`: multiplier · max(1, log10(n)) · probe interval.
    static func minimumTimeout(clusterSize: Int, settings: MembershipSettings) -> Int64 {
        let scale = max(1, log10(Double(max(1, clusterSize))))
        return Int64((Double(settings.suspicionMultiplier) * scale * Double(settings.probeIntervalMilliseconds)).rounded(.up))
    }
}

import Foundation
