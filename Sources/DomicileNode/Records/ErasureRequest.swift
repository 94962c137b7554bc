import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// An erasure request as stored. The regions it waits for are rows of
/// `erasure_regions`, the nodes of each that must ack rows of
/// `erasure_expected_nodes`, so the cross-region cascade adds regions and
/// acks without changing the request's shape.
struct ErasureRequest: Sendable {
    enum Status: String, Sendable {
        case pending
        case complete
    }

    /// Where one expected region stands.
    enum RegionState: String, Sendable {
        case pending
        /// Every expected node of the region has acked.
        case erased
    }

    let erasureID: String
    let requestedAt: Timestamp
    let requestedBy: String
    let originRegion: RegionID
    let jurisdiction: String
    let dueAt: Timestamp
    let erasedPIDs: [String]
    let status: Status
    let completedAt: Timestamp?
    /// The request as its origin signed it; nil for requests recorded before
    /// requests were signed (they carry no certificate).
    let signed: SignedErasureRequest?
    let completionSignature: [UInt8]?
    /// Who signed the completion when not the origin (see `ErasureCertificate.completedBy`).
    let completer: Completer?
    var regions: [RegionID: RegionState]
    var acks: [ErasureAck]

    func isOverdue(at now: Timestamp) -> Bool { status == .pending && dueAt < now }

    /// Expected nodes that have not acked yet, per region; none of a region
    /// acked for as a whole.
    var waitingForNodes: [RegionID: [String]] {
        guard let signed else { return [:] }
        var waiting: [RegionID: [String]] = [:]
        for (region, nodes) in signed.expectedNodes where !acks.contains(where: { $0.region == region && $0.scope == .region }) {
            let missing = nodes.filter { node in !acks.contains { $0.region == region && $0.node == node } }
            if !missing.isEmpty { waiting[region] = missing }
        }
        return waiting
    }

    var certificate: ErasureCertificate? {
        guard status == .complete, let completedAt, let signed, let completionSignature else { return nil }
        return ErasureCertificate(request: signed, completedAt: completedAt, completedBy: completer?.node,
                                  completionPublicKey: completer?.publicKey, completionSignature: completionSignature, acks: acks)
    }

    struct Completer: Sendable {
        let node: String
        let publicKey: Ed25519PublicKey
    }
}
