/// Errors from parsing the shared vocabulary. They never carry the rejected
/// value: a rejected identifier is still personal data.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidRegion
    case invalidNodeName
    case invalidName(what: String)
    case invalidTimestamp
    case invalidPID(reason: String)
    case invalidIdentifier(kind: IdentifierKind, reason: String)
    case unknownIdentifierKind
    case invalidEncoding(what: String)
    case truncated(what: String)

    public var description: String {
        switch self {
        case .invalidRegion:
            return "region ids are 1-16 lowercase letters or digits, starting with a letter"
        case .invalidNodeName:
            return "node names are 1-64 characters: lowercase letters, digits, '-', '.' or '_', starting with a letter or digit"
        case .invalidName(let what):
            return "invalid \(what)"
        case .invalidTimestamp:
            return "timestamps are RFC 3339, e.g. 2026-11-22T10:00:00Z"
        case .invalidPID(let reason):
            return "malformed pid: \(reason)"
        case .invalidIdentifier(let kind, let reason):
            return "invalid \(kind.rawValue) identifier: \(reason)"
        case .unknownIdentifierKind:
            return "unknown identifier kind (expected email, phone or customer_id)"
        case .invalidEncoding(let what):
            return "invalid encoding of \(what)"
        case .truncated(let what):
            return "truncated \(what)"
        }
    }
}
