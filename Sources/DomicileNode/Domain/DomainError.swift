import DomicileModel
import DomicileNet

/// A refusal decided by the domain: a stable `code` (API.md), the kind of
/// refusal, and a detail that names fields and rules, never the values sent.
/// The domain says what went wrong; the routes say how HTTP spells it
/// (`DomainError+Problem.swift`), so the same call can be answered from a
/// route, a replicated log entry, a forwarded request or a test.
struct DomainError: Error, Sendable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        /// The request cannot be read as what it claims to be (400).
        case malformed
        /// Policy, consent or budget does not allow it (403).
        case refused
        /// What it names is not held here (404).
        case notFound
        /// It contradicts what is stored (409).
        case conflict
        /// It belongs to another region (421).
        case misdirected
        /// It is well formed but breaks a rule (422).
        case invalid
        /// Stored data does not decode, or the node failed (500).
        case failed
        /// The node cannot serve it now; retry later (503).
        case unavailable
        /// There is no room to store it (507).
        case noRoom
    }

    let kind: Kind
    let code: String
    var detail: String
    /// Facts a client acts on (e.g. `home_region`, `epsilon_remaining`).
    var extensions: [String: JSONValue]

    init(_ kind: Kind, code: String, detail: String, extensions: [String: JSONValue] = [:]) {
        self.kind = kind
        self.code = code
        self.detail = detail
        self.extensions = extensions
    }

    var description: String { "\(code): \(detail)" }

    /// The same refusal, its detail prefixed by where it applies (a batch entry).
    func at(_ prefix: String) -> DomainError {
        DomainError(kind, code: code, detail: "\(prefix)\(detail)", extensions: extensions)
    }
}

/// The refusals several services share.
extension DomainError {
    static func invalidPID(_ reason: String) -> DomainError {
        DomainError(.malformed, code: "invalid_pid", detail: "the pid is malformed: \(reason)")
    }

    static func misdirected(home: RegionID, nodes: [NodeAddress]) -> DomainError {
        DomainError(.misdirected, code: "misdirected", detail: "this subject belongs to region \(home); send the request to one of its nodes",
                    extensions: ["home_region": .string(home.rawValue),
                                 "nodes": .array(nodes.map { .object(["name": .string($0.name), "http": .string($0.http)]) })])
    }

    static func unknownRegion(_ detail: String) -> DomainError {
        DomainError(.invalid, code: "unknown_region", detail: detail)
    }

    static func unknownPurpose(_ field: String) -> DomainError {
        DomainError(.invalid, code: "unknown_purpose", detail: "\(field) names a purpose the policy does not allow in this region")
    }

    static func invalidIdentifier(_ error: ModelError) -> DomainError {
        DomainError(.invalid, code: "invalid_identifier", detail: error.description)
    }

    static func unknownSubject() -> DomainError {
        DomainError(.notFound, code: "unknown_subject", detail: "no subject with this pid or identifier in this region")
    }

    static func invalid(_ field: String, _ rule: String, code: String = "invalid_request") -> DomainError {
        DomainError(.invalid, code: code, detail: "\(field): \(rule)")
    }

    static func consentRequired(_ purposes: [String]) -> DomainError {
        DomainError(.refused, code: "consent_required",
                    detail: "the subject's consent does not cover \(purposes.joined(separator: ", ")); nothing was stored")
    }
}
