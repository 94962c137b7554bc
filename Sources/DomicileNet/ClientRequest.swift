import DomicileModel

/// One call of `HTTPClient.send`, from the calling task to its one answer.
/// Made on the calling task, then touched only on its loop's thread —
/// except the cancellation mark, which the task's cancellation handler sets
/// from wherever it runs.
final class ClientRequest: @unchecked Sendable {
    let peer: SocketAddress
    /// The serialized request.
    let bytes: [UInt8]
    /// Monotonic milliseconds; past it the call fails with `timedOut`.
    let deadline: Int64
    /// Repeating it is harmless, so a stale keep-alive connection may be retried.
    let idempotent: Bool
    private let cancelled = Locked(false)

    // Loop thread only (set by the calling task before it is handed over).
    var continuation: CheckedContinuation<HTTPClientResponse, any Error>?
    /// The connection carrying it; nil while it waits for one.
    var connection: ClientConnection?
    /// Already retried once on a fresh connection.
    var retried = false

    init(peer: SocketAddress, bytes: [UInt8], deadline: Int64, idempotent: Bool) {
        self.peer = peer
        self.bytes = bytes
        self.deadline = deadline
        self.idempotent = idempotent
    }

    func markCancelled() { cancelled.withLock { $0 = true } }
    var isCancelled: Bool { cancelled.value }

    /// Answers the caller, once; later answers are ignored.
    func resume(with result: Result<HTTPClientResponse, HTTPClient.Failure>) {
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(with: result.mapError { $0 as any Error })
    }
}
