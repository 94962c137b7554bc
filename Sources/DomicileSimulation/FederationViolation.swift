/// A broken property of the federation found by its simulator.
public struct FederationViolation: Error, CustomStringConvertible, Sendable {
    public enum Property: String, Sendable {
        /// A region holds a record the residency policy keeps from it.
        case residency
        /// Two records at one (origin, sequence) position, or a record unlike the one its origin published there.
        case onePositionOneRecord = "one record per position"
        /// An ack published, or held anywhere, while its region had not durably erased.
        case ackAfterErasure = "no ack without the erasure applied"
        /// A certificate complete while an expected region had not acked (or not erased).
        case certificateSound = "certificate complete only when every expected region acked"
        /// A `deltas` message over the exchange's byte or entry bound.
        case exchangeBounded = "bounded exchange"
        /// A region keeps the body of a noised embedding that a newer generation
        /// superseded, or of a pid an intent it holds erases.
        case retired = "superseded and erased noised embeddings are retired"
        /// A message that did not survive the codec unchanged.
        case codec
        /// After healing: a region lacks a release it may hold or the newest copy of a
        /// noised embedding, an expected region never got an intent, a certificate
        /// never completed, or the vectors differ.
        case convergence
    }

    public var property: Property
    public var detail: String

    public init(_ property: Property, _ detail: String) {
        self.property = property
        self.detail = detail
    }

    public var description: String { "\(property.rawValue): \(detail)" }
}
