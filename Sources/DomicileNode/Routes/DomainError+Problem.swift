import DomicileNet

/// How HTTP spells a domain refusal: its kind as a status, its code,
/// detail and extensions as the problem document.
extension DomainError {
    var status: Int {
        switch kind {
        case .malformed: return 400
        case .refused: return 403
        case .notFound: return 404
        case .conflict: return 409
        case .misdirected: return 421
        case .invalid: return 422
        case .failed: return 500
        case .unavailable: return 503
        case .noRoom: return 507
        }
    }

    var problem: HTTPError { HTTPError(status: status, code: code, detail: detail, extensions: extensions) }
}
