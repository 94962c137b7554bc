import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call, with the function's name and errno.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public let function: String
    public let errno: Int32

    public init(function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }

    public var description: String { "\(function) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// The outcome of a non-blocking call: done, or it would have blocked.
public enum IOResult<T: Sendable>: Sendable {
    case done(T)
    case wouldBlock
}

/// The one wrapper for system calls (in the manner of swift-nio's
/// `System.swift`): retries EINTR, reports EAGAIN as `.wouldBlock`, stops on
/// EBADF and EFAULT — a descriptor or pointer we got wrong is our bug, and
/// continuing could write into someone else's file — and throws
/// `SystemError` for everything else. `body` follows the C convention of
/// returning -1 and setting errno on failure.
@inline(__always)
public func syscall<T: FixedWidthInteger & Sendable>(_ function: StaticString, _ body: () -> T) throws(SystemError) -> IOResult<T> {
    while true {
        let result = body()
        if result != -1 { return .done(result) }
        let code = errno
        switch code {
        case EINTR:
            continue
        case EAGAIN:  // EWOULDBLOCK is the same value on Linux.
            return .wouldBlock
        case EBADF, EFAULT:
            preconditionFailure("\(function) failed with errno \(code): bad descriptor or address (a bug in Domicile)")
        default:
            throw SystemError(function: "\(function)", errno: code)
        }
    }
}

/// For calls that never legitimately return EAGAIN (bind, listen, epoll_ctl…).
@inline(__always)
public func syscallValue<T: FixedWidthInteger & Sendable>(_ function: StaticString, _ body: () -> T) throws(SystemError) -> T {
    switch try syscall(function, body) {
    case .done(let value): return value
    case .wouldBlock: throw SystemError(function: "\(function)", errno: EAGAIN)
    }
}

/// close(2) is the exception to "retry EINTR": on Linux the descriptor is
/// released even when close reports EINTR, and retrying could close a
/// descriptor another thread has just been given.
public func closeDescriptor(_ descriptor: Int32) {
    if close(descriptor) == -1 && errno == EBADF {
        preconditionFailure("close: bad descriptor \(descriptor) (closed twice?)")
    }
}

/// Monotonic time in milliseconds, for deadlines (never wall-clock time).
public func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000 + Int64(now.tv_nsec) / 1_000_000
}
