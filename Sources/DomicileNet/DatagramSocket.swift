import CLinux
import DomicileModel
#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket for gossip: bound once, sends to any address, receives with
/// a timeout on a thread of its own. Safe to send from several threads
/// (sendto on one socket is atomic per datagram).
public final class DatagramSocket: @unchecked Sendable {
    public let descriptor: Int32
    public let localAddress: SocketAddress
    /// Receives larger than this are truncated, then dropped as malformed.
    public static let datagramBytesMax = 65_507

    public init(bind address: SocketAddress, receiveTimeoutMilliseconds: Int) throws(SystemError) {
        let descriptor = try syscallValue("socket") {
            socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(SystemError) {
            try Socket.setOption(descriptor, SOL_SOCKET, SO_REUSEADDR, 1)
            let bound = address.withSockAddr { pointer, length in bind(descriptor, pointer, length) }
            if bound == -1 { throw SystemError(function: "bind", errno: errno) }
            var timeout = timeval(tv_sec: receiveTimeoutMilliseconds / 1_000, tv_usec: (receiveTimeoutMilliseconds % 1_000) * 1_000)
            _ = try syscallValue("setsockopt") {
                setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }
            localAddress = try SocketAddress.local(of: descriptor)
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
        self.descriptor = descriptor
    }

    deinit { closeDescriptor(descriptor) }

    /// Best effort, as UDP is: a failure is counted by the caller, not thrown.
    @discardableResult
    public func send(_ bytes: [UInt8], to address: SocketAddress) -> Bool {
        let sent = bytes.withUnsafeBytes { raw in
            address.withSockAddr { pointer, length in
                sendto(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), pointer, length)
            }
        }
        return sent == bytes.count
    }

    /// The next datagram and its sender, or nil when the timeout passed.
    public func receive() -> (bytes: [UInt8], from: SocketAddress)? {
        var buffer = [UInt8](repeating: 0, count: Self.datagramBytesMax)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(descriptor, raw.baseAddress, raw.count, 0, $0, &length) }
            }
        }
        guard count >= 0 else { return nil }
        return (Array(buffer.prefix(count)), SocketAddress.from(storage))
    }
}

/// Length-prefixed frames over a blocking TCP connection with deadlines:
/// the push-pull exchange of membership state.
public enum FramedConnection {
    public enum Failure: Error, Equatable { case connect, timeout, closed, tooLarge }

    /// Connects, sends `request` as one frame and returns the reply frame.
    public static func exchange(_ request: [UInt8], with address: SocketAddress, timeoutMilliseconds: Int64,
                                frameBytesMax: Int) throws(Failure) -> [UInt8] {
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        guard let descriptor = try? Socket.connect(to: address, deadline: deadline) else { throw .connect }
        defer { closeDescriptor(descriptor) }
        try write(request, to: descriptor, deadline: deadline)
        return try read(from: descriptor, deadline: deadline, frameBytesMax: frameBytesMax)
    }

    /// `u32 length · bytes`.
    public static func write(_ frame: [UInt8], to descriptor: Int32, deadline: Int64) throws(Failure) {
        var bytes: [UInt8] = withUnsafeBytes(of: UInt32(frame.count).bigEndian) { Array($0) }
        bytes.append(contentsOf: frame)
        var offset = 0
        while offset < bytes.count {
            try wait(descriptor, Int16(POLLOUT), deadline)
            let written = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw .closed
            }
            offset += written
        }
    }

    public static func read(from descriptor: Int32, deadline: Int64, frameBytesMax: Int) throws(Failure) -> [UInt8] {
        let header = try readExactly(4, from: descriptor, deadline: deadline)
        let length = Int(UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3]))
        guard length <= frameBytesMax else { throw .tooLarge }
        return try readExactly(length, from: descriptor, deadline: deadline)
    }

    private static func readExactly(_ count: Int, from descriptor: Int32, deadline: Int64) throws(Failure) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            try wait(descriptor, Int16(POLLIN), deadline)
            let received = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if received < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw .closed
            }
            if received == 0 { throw .closed }
            offset += received
        }
        return bytes
    }

    private static func wait(_ descriptor: Int32, _ events: Int16, _ deadline: Int64) throws(Failure) {
        do {
            try Socket.wait(descriptor, for: events, deadline: deadline)
        } catch .timedOut {
            throw .timeout
        } catch {
            throw .closed
        }
    }
}

/// A blocking TCP listener whose connections are handled on a bounded pool.
public final class StreamListener: @unchecked Sendable {
    public let descriptor: Int32
    public let localAddress: SocketAddress
    private let pool: BlockingPool
    private let active = Locked(0)
    private let stopping = Locked(false)
    private let started = Locked(false)
    private let stopped = DispatchSemaphore(value: 0)
    private let connectionsMax: Int

    public init(bind address: SocketAddress, connectionsMax: Int, name: String) throws(SystemError) {
        descriptor = try Socket.listen(on: address, backlog: 64)
        localAddress = try SocketAddress.local(of: descriptor)
        self.connectionsMax = connectionsMax
        pool = BlockingPool(name: name, threadsMax: connectionsMax)
    }

    /// Accepts until `close`, calling `handle` with each connection (which
    /// it must close) on the pool; connections beyond the limit are closed.
    public func start(_ handle: @escaping @Sendable (Int32) -> Void) {
        started.withLock { $0 = true }
        let thread = Thread { [self] in
            nameCurrentThread("stream-accept")
            // The listener is closed here, by the thread that polls it, so a
            // descriptor number is never closed under a poll in progress.
            defer {
                closeDescriptor(descriptor)
                stopped.signal()
            }
            while !stopping.value {
                var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                let ready = poll(&request, 1, 100)
                if ready < 0 && errno != EINTR { return }
                guard ready > 0, case .done(let connection)? = try? Socket.accept(descriptor) else { continue }
                let admitted = active.withLock { count -> Bool in
                    guard count < connectionsMax else { return false }
                    count += 1
                    return true
                }
                guard admitted else {
                    closeDescriptor(connection)
                    continue
                }
                pool.submit { [active] in
                    handle(connection)
                    active.withLock { $0 -= 1 }
                }
            }
        }
        thread.start()
    }

    /// Stops accepting and waits for the accept thread to close the socket.
    public func close() {
        let first = stopping.withLock { flag -> Bool in
            defer { flag = true }
            return !flag
        }
        guard first else { return }
        if started.value { stopped.wait() } else { closeDescriptor(descriptor) }
    }
}

import Foundation
