import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// Every refused call that names a subject is audited with its code
/// (docs/DECISIONS.md, "Refusals, revocations and client text"): one
/// `request.refused` event per subject of this region the call names,
/// outcome `refused:<code>`, the route in the detail. Never the value that
/// was refused: the code says what was wrong.
///
/// Only authenticated callers' refusals are audited (a 401 has no principal,
/// and auditing it would let anyone fill the log), and not 429 (the rate
/// limit sheds load; a write per shed call would undo it) nor 5xx (failures,
/// not refusals). Writing the event never changes the answer: if it fails,
/// the refusal is still sent and a warning logged.
enum RefusalAudit {
    static func run(_ request: HTTPRequest, pattern: String, services: NodeServices,
                    _ route: (HTTPRequest, RefusalTrail) async throws -> HTTPResponse) async throws -> HTTPResponse {
        let trail = RefusalTrail()
        do {
            return try await route(request, trail)
        } catch let refusal as HTTPError {
            if let principal = trail.principalToAudit, isAudited(refusal) {
                await record(refusal, of: request, pattern: pattern, by: principal, services: services)
            }
            throw refusal
        }
    }

    static func isAudited(_ refusal: HTTPError) -> Bool {
        (400..<500).contains(refusal.status) && refusal.status != 401 && refusal.status != 429
    }

    static func record(_ refusal: HTTPError, of request: HTTPRequest, pattern: String, by principal: Principal,
                       services: NodeServices) async {
        let pids = subjects(namedBy: request, region: services.region, readBody: refusal.status != 413)
        guard !pids.isEmpty else { return }
        let now = services.clock.now()
        let events = pids.map { pid in
            AuditEvent(at: now, principal: principal.name, action: Refusals.action, pid: pid.rawValue, outcome: Refusals.outcome(refusal.code),
                       requestID: request.requestID, detail: Refusals.detail(method: request.method, pattern: pattern))
        }
        await services.auditRefusal(events, code: refusal.code, requestID: request.requestID)
    }

    /// The subjects of this region a request names: its `{pid}` path
    /// parameter, else the body's top-level `pid` and the `pid` of each
    /// object in a top-level array (a batch's entries). Malformed pids and
    /// other regions' pids name no subject held here.
    static func subjects(namedBy request: HTTPRequest, region: RegionID, readBody: Bool) -> [PID] {
        var texts: [String] = []
        if let text = request.pathParameters["pid"] {
            texts.append(text)
        } else if readBody, !request.body.isEmpty,
                  case .object(let members)? = try? JSONDecoder().decode(JSONValue.self, from: Data(request.body)) {
            if case .string(let text)? = members["pid"] { texts.append(text) }
            for case .array(let entries) in members.values {
                for case .object(let entry) in entries {
                    if case .string(let text)? = entry["pid"] { texts.append(text) }
                }
            }
        }
        return Refusals.subjects(named: texts, region: region)
    }
}
