import DomicileNet
import Foundation

/// A JSON value, for the open-ended members of the API (problem extensions,
/// event fields, an erasure certificate as the node sent it).
public typealias JSONValue = DomicileNet.JSONValue

/// A refusal from a node: its `application/problem+json` document (RFC 9457)
/// with Domicile's stable `code` (API.md), and the members API.md adds to
/// some of them, typed.
public struct DomicileProblem: Error, Sendable, CustomStringConvertible {
    public let status: Int
    public let code: ProblemCode
    public let type: String?
    public let title: String
    /// Names fields and rules, never an identifier, a feature value or a vector.
    public let detail: String
    /// The node's `X-Request-Id`: what its log and audit entries carry.
    public let requestID: String?
    /// `Retry-After` in seconds (429, 503).
    public let retryAfterSeconds: Int64?
    /// Every member beyond `type`, `title`, `status`, `detail` and `code`.
    public let extensions: [String: JSONValue]

    public var description: String { "\(status) \(code.rawValue): \(detail)" }

    /// 421 `misdirected`: the subject's home region.
    public var homeRegion: String? { extensions["home_region"]?.stringValue }

    /// 421 `misdirected`: the live nodes of the home region, as the node answering knew them.
    public var nodes: [NodeLink] {
        guard case .array(let entries) = extensions["nodes"] else { return [] }
        return entries.compactMap { entry in
            guard case .object(let members) = entry, let name = members["name"]?.stringValue,
                  let http = members["http"]?.stringValue else { return nil }
            return NodeLink(name: name, http: http)
        }
    }

    /// 403 `budget_exhausted`: what the budget still allows this period.
    public var epsilonRemaining: Double? { extensions["epsilon_remaining"]?.numberValue }
    public var deltaRemaining: Double? { extensions["delta_remaining"]?.numberValue }

    /// 422 `unknown_field`: the event fields the contract does not declare.
    public var fields: [String] {
        guard case .array(let names) = extensions["fields"] else { return [] }
        return names.compactMap(\.stringValue)
    }

    /// A refused consent batch: the receipts stored before the refused entry, as the node listed them.
    public var stored: JSONValue? { extensions["stored"] }

    init(status: Int, code: ProblemCode, type: String?, title: String, detail: String, requestID: String?,
         retryAfterSeconds: Int64?, extensions: [String: JSONValue]) {
        self.status = status
        self.code = code
        self.type = type
        self.title = title
        self.detail = detail
        self.requestID = requestID
        self.retryAfterSeconds = retryAfterSeconds
        self.extensions = extensions
    }

    /// The problem a response carries; a body that is not a problem
    /// document still becomes one (code `http_<status>`), so a caller always
    /// gets the status and the request id.
    init(response: HTTPClientResponse) {
        var members: [String: JSONValue] = [:]
        if case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(response.body)) { members = object }
        let standard: Set = ["type", "title", "status", "detail", "code"]
        self.init(status: response.status,
                  code: ProblemCode(rawValue: members["code"]?.stringValue ?? "http_\(response.status)"),
                  type: members["type"]?.stringValue,
                  title: members["title"]?.stringValue ?? HTTPStatus.reason(response.status),
                  detail: members["detail"]?.stringValue ?? "",
                  requestID: response.headers["x-request-id"],
                  retryAfterSeconds: RetryPolicy.retryAfterSeconds(response.headers["retry-after"]),
                  extensions: members.filter { !standard.contains($0.key) })
    }
}

/// A node of a region, as a 421 names it: where to send the call instead.
public struct NodeLink: Codable, Sendable, Hashable {
    public let name: String
    /// `host:port` of its HTTP API.
    public let http: String

    public init(name: String, http: String) {
        self.name = name
        self.http = http
    }
}

/// A problem's stable, machine-readable `code` (API.md). Compare with the
/// constants; a code this client does not know yet is still a `ProblemCode`.
public struct ProblemCode: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }

    // Access and limits.
    public static let unauthorized: ProblemCode = "unauthorized"
    public static let forbidden: ProblemCode = "forbidden"
    public static let rateLimited: ProblemCode = "rate_limited"
    public static let overloaded: ProblemCode = "overloaded"
    public static let bodyTooLarge: ProblemCode = "body_too_large"
    public static let noQuorum: ProblemCode = "no_quorum"
    public static let notReady: ProblemCode = "not_ready"
    public static let insufficientStorage: ProblemCode = "insufficient_storage"
    public static let internalError: ProblemCode = "internal_error"
    // Reading the request.
    public static let invalidJSON: ProblemCode = "invalid_json"
    public static let duplicateKey: ProblemCode = "duplicate_key"
    public static let numberOutOfRange: ProblemCode = "number_out_of_range"
    public static let invalidRequest: ProblemCode = "invalid_request"
    // Subjects.
    public static let misdirected: ProblemCode = "misdirected"
    public static let invalidPID: ProblemCode = "invalid_pid"
    public static let invalidIdentifier: ProblemCode = "invalid_identifier"
    public static let unknownRegion: ProblemCode = "unknown_region"
    public static let unknownSubject: ProblemCode = "unknown_subject"
    // Consent and features.
    public static let unknownPurpose: ProblemCode = "unknown_purpose"
    public static let consentRequired: ProblemCode = "consent_required"
    public static let unknownFeature: ProblemCode = "unknown_feature"
    public static let typeMismatch: ProblemCode = "type_mismatch"
    public static let piiDetected: ProblemCode = "pii_detected"
    public static let purposeRequired: ProblemCode = "purpose_required"
    public static let unknownContract: ProblemCode = "unknown_contract"
    public static let unknownField: ProblemCode = "unknown_field"
    // Vectors.
    public static let invalidVector: ProblemCode = "invalid_vector"
    public static let kTooLarge: ProblemCode = "k_too_large"
    public static let purposeMismatch: ProblemCode = "purpose_mismatch"
    // Aggregates, erasure, re-identification.
    public static let budgetExhausted: ProblemCode = "budget_exhausted"
    public static let unknownErasure: ProblemCode = "unknown_erasure"
    public static let selfApproval: ProblemCode = "self_approval"
    public static let alreadyApproved: ProblemCode = "already_approved"
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var numberValue: Double? {
        if case .number(let number) = self { return number }
        return nil
    }
}
