import DomicileModel
import DomicileStorage
import Foundation

/// What refusal auditing needs to know about one call: who made it (once
/// authenticated) and whether its handler already audited its refusal.
final class RefusalTrail: Sendable {
    private struct State: Sendable {
        var principal: Principal?
        var audited = false
    }

    private let state = Locked(State())

    /// The caller is authenticated: a refusal from here on is theirs.
    func authenticated(_ principal: Principal) { state.withLock { $0.principal = principal } }

    /// The handler wrote the refusal's audit event itself (e.g. `writeAudited`).
    func markAudited() { state.withLock { $0.audited = true } }

    /// The principal to audit a refusal under: nil before authentication
    /// and once the handler has audited the refusal.
    var principalToAudit: Principal? { state.withLock { $0.audited ? nil : $0.principal } }
}
