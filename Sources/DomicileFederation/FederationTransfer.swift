import DomicileModel
import DomicilePrivacy

/// Whether a record of `kind`, published by `origin`, may be held by
/// `destination`: the residency policy's transfer rules, asked by a sender
/// before each record it would send and by a receiver before it keeps one.
/// A rule that does not name the pair denies it.
public struct FederationTransfer: Sendable {
    private let allows: @Sendable (FederationRecordKind, RegionID, RegionID) -> Bool
    /// Beyond the kind: whether this record's release parameters meet the
    /// rule (a noised embedding's ε at most the rule's noise floor).
    private let admits: @Sendable (FederationRecord, RegionID, RegionID) -> Bool

    public init(_ allows: @escaping @Sendable (_ kind: FederationRecordKind, _ origin: RegionID, _ destination: RegionID) -> Bool,
                admitting admits: @escaping @Sendable (_ record: FederationRecord, _ origin: RegionID, _ destination: RegionID) -> Bool
                    = { _, _, _ in true }) {
        self.allows = allows
        self.admits = admits
    }

    public func allows(_ kind: FederationRecordKind, from origin: RegionID, to destination: RegionID) -> Bool {
        origin == destination || allows(kind, origin, destination)
    }

    /// Whether `destination` may hold this record of `origin`.
    public func allows(_ record: FederationRecord, from origin: RegionID, to destination: RegionID) -> Bool {
        origin == destination || (allows(record.kind, origin, destination) && admits(record, origin, destination))
    }

    /// The policy's transfer rules for each kind's data class, from the
    /// record's origin region (its home) to the destination, whichever region
    /// relays it. Unknown regions and classes are denied (`ResidencyPolicy.transfer`).
    /// A noised embedding's ε must be at most the rule's `noise_floor_epsilon`.
    public static func policy(_ policy: ResidencyPolicy) -> FederationTransfer {
        FederationTransfer { kind, origin, destination in
            policy.transfer(kind.dataClass, from: origin, to: destination) != nil
        } admitting: { record, origin, destination in
            guard case .noisedEmbedding(let embedding) = record, let epsilon = embedding.epsilon,
                  let floor = policy.transfer(.noisedEmbedding, from: origin, to: destination)?.noiseFloorEpsilon else { return true }
            return epsilon <= floor
        }
    }

    /// Every record everywhere (tests and the simulator's open federations).
    public static let everything = FederationTransfer { _, _, _ in true }
}
