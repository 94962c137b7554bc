import DomicileModel
import DomicilePrivacy

/// Where one erasure request stands, as the records held here show it: the
/// origin's certificate is complete when every expected region has acked.
public struct ErasureProgress: Sendable, Equatable {
    public let intent: ErasureIntent
    /// The acks that answer this request (its hash and link), per expected region.
    public let acks: [RegionID: ErasureAck]

    public var missing: [RegionID] { intent.expectedRegions.filter { acks[$0] == nil } }
    public var isComplete: Bool { missing.isEmpty }
}

extension FederationNode {
    /// The intents that expect this region and that it has not acked yet,
    /// by erasure id: the shell erases for each (idempotently) and publishes
    /// its ack — after each `apply`, and after a restart.
    public var intentsAwaitingAck: [ErasureIntent] {
        unacknowledged.sorted().map { intents[$0]! }
    }

    /// The request's progress, once its intent is held here. An ack that
    /// names another request hash or link, or comes from a region the
    /// request did not expect, does not count.
    public func progress(of erasureID: String) -> ErasureProgress? {
        guard let intent = intents[erasureID] else { return nil }
        let hash = intent.request.hash
        let expected = Set(intent.expectedRegions)
        let binding = (acks[erasureID] ?? [:]).filter { region, ack in
            expected.contains(region) && ack.requestHash == hash && ack.linkHash == intent.linkHash
        }
        return ErasureProgress(intent: intent, acks: binding)
    }
}
