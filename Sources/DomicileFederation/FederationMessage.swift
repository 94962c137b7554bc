import DomicileModel

/// What one region sends another in the anti-entropy exchange
/// (docs/FEDERATION.md). Message type numbers are append-only.
public enum FederationMessage: Sendable, Equatable {
    /// "This is what I hold": the sender's version vector. The receiver
    /// answers with `deltas`.
    case digest(VersionVector)
    /// Entries the receiver lacked, in order per origin, within the
    /// exchange's bounds. `digest`, when present, is the sender's vector, so
    /// the receiver sends back what the sender lacks (push-pull); `more`
    /// says the sender stopped at a bound and holds more for the receiver,
    /// which continues with a new digest (the exchange is resumable).
    case deltas(entries: [FederationEntry], digest: VersionVector?, more: Bool)
}

/// A message with its sending and receiving regions.
public struct FederationEnvelope: Sendable, Equatable {
    public let from: RegionID
    public let to: RegionID
    public let message: FederationMessage

    public init(from: RegionID, to: RegionID, message: FederationMessage) {
        self.from = from
        self.to = to
        self.message = message
    }
}
