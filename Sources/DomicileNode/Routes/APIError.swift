import DomicileModel
import DomicileNet
import DomicileStorage

/// The problem documents of API.md, by stable `code`. Details name fields
/// and rules, never the values sent.
enum APIError {
    static func unauthorized() -> HTTPError {
        HTTPError(status: 401, code: "unauthorized", detail: "send a valid bearer token in the Authorization header",
                  headers: ["WWW-Authenticate": #"Bearer realm="domicile""#])
    }

    static func forbidden(_ roles: Set<Role>) -> HTTPError {
        HTTPError(status: 403, code: "forbidden",
                  detail: "this call needs one of the roles: \(roles.map(\.rawValue).sorted().joined(separator: ", "))")
    }

    static func rateLimited(retryAfterSeconds: Int64) -> HTTPError {
        HTTPError(status: 429, code: "rate_limited", detail: "this principal's read rate limit is exhausted; retry later",
                  headers: ["Retry-After": String(max(1, retryAfterSeconds))])
    }

    static func notReady(_ reason: String) -> HTTPError {
        HTTPError(status: 503, code: "not_ready", detail: reason)
    }

    static func insufficientStorage() -> HTTPError {
        HTTPError(status: 507, code: "insufficient_storage",
                  detail: "the node's disk is full: this request was not acknowledged and nothing was returned; retry later")
    }

    static func noQuorum() -> HTTPError {
        HTTPError(status: 503, code: "no_quorum",
                  detail: "this node cannot reach a majority of its region: the request was not acknowledged (a write may still take effect); retry later",
                  headers: ["Retry-After": "1"])
    }

    static func corruptData() -> HTTPError {
        HTTPError(status: 500, code: "corrupt_data", detail: "data stored on this node does not decode; the node's log names where")
    }

    static func internalError() -> HTTPError {
        HTTPError(status: 500, code: "internal_error", detail: "the server could not complete the request")
    }

    /// The answer to a handler's error: a domain refusal as its problem document; otherwise 507 when
    /// the disk is full, 500 `corrupt_data` for stored data that does not
    /// decode, else 500 `internal_error`. Each is logged as a JSON line
    /// (table and column, type or SQLite code; never a value).
    static func problem(for error: any Error, logger: Logger, requestID: String) -> HTTPError {
        if let error = error as? HTTPError { return error }
        if let error = error as? DomainError { return error.problem }
        if let error = error as? NoQuorum {
            logger.warning("no quorum", ["reason": .string(error.reason), "request_id": .string(requestID)])
            return noQuorum()
        }
        if StorageError.isDiskFull(error) {
            logger.error("disk full", ["request_id": .string(requestID)])
            return insufficientStorage()
        }
        if let error = error as? StorageError, error.isCorrupt {
            logger.error("corrupt data", ["error": .string(error.message), "request_id": .string(requestID)])
            return corruptData()
        }
        let code = (error as? StorageError).map { Int64($0.resultCode) } ?? 0
        logger.error("unhandled error", ["type": .string("\(type(of: error))"), "sqlite_code": .int(code),
                                         "request_id": .string(requestID)])
        return internalError()
    }
}
