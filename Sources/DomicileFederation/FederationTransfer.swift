import DomicileModel
import DomicilePrivacy

/// Whether a record of `kind`, published by `origin`, may be held by
/// `destination`: the residency policy's transfer rules, asked by a sender
/// before each record it would send and by a receiver before it keeps one.
/// A rule that does not name the pair denies it.
public struct FederationTransfer: Sendable {
    private let allows: @Sendable (FederationRecordKind, RegionID, RegionID) -> Bool

    public init(_ allows: @escaping @Sendable (_ kind: FederationRecordKind, _ origin: RegionID, _ destination: RegionID) -> Bool) {
        self.allows = allows
    }

    public func allows(_ kind: FederationRecordKind, from origin: RegionID, to destination: RegionID) -> Bool {
        origin == destination || allows(kind, origin, destination)
    }

    /// The policy's transfer rules for each kind's data class, from the
    /// record's origin region (its home) to the destination, whichever region
    /// relays it. Unknown regions and classes are denied (`ResidencyPolicy.transfer`).
    public static func policy(_ policy: ResidencyPolicy) -> FederationTransfer {
        FederationTransfer { kind, origin, destination in
            policy.transfer(kind.dataClass, from: origin, to: destination) != nil
        }
    }

    /// Every record everywhere (tests and the simulator's open federations).
    public static let everything = FederationTransfer { _, _, _ in true }
}
