/// Why the federation machine or its codec refused something. Never carries
/// the refused value (it may be personal data).
public enum FederationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A record field out of its bounds or format (names the field).
    case invalidRecord(String)
    /// A record published by a region that is not its own.
    case notOurs
    /// A record whose body exceeds the record bound (`recordBytesMax`).
    case recordTooLarge(bytes: Int)
    /// Bytes the codec refuses: another version, an unknown type or kind,
    /// a count or length beyond its bound or beyond what remains, trailing bytes.
    case malformed(String)
    /// Persisted entries that do not form a contiguous log per origin.
    case corruptState(String)
    /// Settings that cannot work together.
    case invalidSettings(String)

    public var description: String {
        switch self {
        case .invalidRecord(let field): "invalid federation record: \(field)"
        case .notOurs: "a region publishes only its own records"
        case .recordTooLarge(let bytes): "a federation record of \(bytes) bytes exceeds the record bound"
        case .malformed(let reason): "malformed federation message: \(reason)"
        case .corruptState(let reason): "corrupt federation state: \(reason)"
        case .invalidSettings(let reason): "invalid federation settings: \(reason)"
        }
    }
}
