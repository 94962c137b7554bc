import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// TCP socket set-up, as plain functions over descriptors.
public enum Socket {
    /// A non-blocking listening socket. SO_REUSEADDR lets a restarted node
    /// bind while old connections sit in TIME_WAIT; SO_REUSEPORT is not set,
    /// so a second process on the same port fails to start instead of
    /// silently taking half the connections.
    public static func listen(on address: SocketAddress, backlog: Int32) throws(SystemError) -> Int32 {
        let descriptor = try syscallValue("socket") {
            socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(SystemError) {
            try setOption(descriptor, SOL_SOCKET, SO_REUSEADDR, 1)
            let bound = address.withSockAddr { pointer, length in bind(descriptor, pointer, length) }
            if bound == -1 { throw SystemError(function: "bind", errno: errno) }
            _ = try syscallValue("listen") { Glibc.listen(descriptor, backlog) }
            return descriptor
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
    }

    /// Accepts one pending connection, non-blocking and close-on-exec.
    public static func accept(_ listener: Int32) throws(SystemError) -> IOResult<Int32> {
        try syscall("accept4") { domicile_accept4(listener, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)) }
    }

    public static func setOption(_ descriptor: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(SystemError) {
        var value = value
        _ = try syscallValue("setsockopt") {
            setsockopt(descriptor, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Small responses go out at once instead of waiting for Nagle's timer.
    public static func setNoDelay(_ descriptor: Int32) {
        _ = try? setOption(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    /// Reads what is available into `buffer`; 0 means the peer closed.
    public static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("read") { Glibc.read(descriptor, buffer.baseAddress, buffer.count) }
    }

    public enum DeadlineFailure: Error, Equatable, Sendable {
        case timedOut
        case failed(SystemError)
    }

    /// Waits until `descriptor` is ready for `events` (POLLIN, POLLOUT) or
    /// the monotonic `deadline` (milliseconds) passes.
    public static func wait(_ descriptor: Int32, for events: Int16, deadline: Int64) throws(DeadlineFailure) {
        while true {
            let remaining = deadline - monotonicMilliseconds()
            guard remaining > 0 else { throw .timedOut }
            var request = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&request, 1, Int32(min(remaining, Int64(Int32.max))))
            if ready > 0 { return }
            if ready == 0 { throw .timedOut }
            if errno != EINTR { throw .failed(SystemError(function: "poll", errno: errno)) }
        }
    }

    /// A non-blocking TCP connection to `address`, established by `deadline`.
    public static func connect(to address: SocketAddress, deadline: Int64) throws(DeadlineFailure) -> Int32 {
        let descriptor: Int32
        do {
            descriptor = try syscallValue("socket") {
                socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            }
        } catch {
            throw .failed(error)
        }
        let started = address.withSockAddr { pointer, length in Glibc.connect(descriptor, pointer, length) }
        if started == -1 && errno != EINPROGRESS && errno != EINTR {
            let failure = SystemError(function: "connect", errno: errno)
            closeDescriptor(descriptor)
            throw .failed(failure)
        }
        do {
            try wait(descriptor, for: Int16(POLLOUT), deadline: deadline)
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &code, &length)
        guard code == 0 else {
            closeDescriptor(descriptor)
            throw .failed(SystemError(function: "connect", errno: code))
        }
        setNoDelay(descriptor)
        return descriptor
    }

    /// Sends without raising SIGPIPE if the peer has gone (EPIPE is thrown instead).
    public static func send(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }
}
