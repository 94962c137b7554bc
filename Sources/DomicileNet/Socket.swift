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

    /// Starts a non-blocking TCP connection to `address`. It is established
    /// when the descriptor becomes writable and `connectError` says nil.
    public static func startConnect(to address: SocketAddress) throws(SystemError) -> Int32 {
        let descriptor = try syscallValue("socket") {
            socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        let started = address.withSockAddr { pointer, length in Glibc.connect(descriptor, pointer, length) }
        if started == -1 && errno != EINPROGRESS && errno != EINTR {
            let failure = SystemError(function: "connect", errno: errno)
            closeDescriptor(descriptor)
            throw failure
        }
        return descriptor
    }

    /// Why a connection started by `startConnect` failed, once it is
    /// writable (or reported an error); nil when it is established.
    public static func connectError(_ descriptor: Int32) -> SystemError? {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &code, &length) == -1 { code = errno }
        return code == 0 ? nil : SystemError(function: "connect", errno: code)
    }

    /// Sends without raising SIGPIPE if the peer has gone (EPIPE is thrown instead).
    public static func send(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }
}
