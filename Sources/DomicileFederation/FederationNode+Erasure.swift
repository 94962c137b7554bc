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

    /// The request's progress, once its intent is held here: per expected
    /// region, its first ack that names the request's hash and link. An ack
    /// that names another request, or comes from a region the request did
    /// not expect, does not count. (Signatures and the signing keys are the
    /// shell's to check against the federation's trusted keys.)
    public func progress(of erasureID: String) -> ErasureProgress? {
        guard let intent = intents[erasureID] else { return nil }
        let hash = intent.request.hash
        let expected = Set(intent.expectedRegions)
        var binding: [RegionID: ErasureAck] = [:]
        for ack in acks[erasureID] ?? [] where binding[ack.region] == nil && expected.contains(ack.region) {
            if ack.requestHash == hash && ack.linkHash == intent.linkHash { binding[ack.region] = ack }
        }
        return ErasureProgress(intent: intent, acks: binding)
    }
}
