import DomicileModel
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay on loopback that holds every chunk it forwards for a set
/// one-way delay, in both directions, keeping the order of bytes: the
/// in-region delay of `bench region` (the kernel of the benchmark machine
/// has no netem). Blocking sockets, two threads per direction of a
/// connection (one reads and stamps, one writes when due).
final class DelayRelay: @unchecked Sendable {
    private let delayMicroseconds = Locked<Int64>(0)
    private let lock = NSLock()
    private var listeners: [Int32] = []
    private var connections: [Int32] = []
    private var stopped = false

    /// Listens on 127.0.0.1:`listen` of each route and forwards what it
    /// accepts to 127.0.0.1:`upstream`.
    init(routes: [(listen: Int, upstream: Int)]) throws {
        for route in routes {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var one: Int32 = 1
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var address = Self.loopback(route.listen)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard listener >= 0, bound == 0, Glibc.listen(listener, 64) == 0 else {
                let reason = String(cString: strerror(errno))
                if listener >= 0 { close(listener) }
                stop()
                throw CLIError.failed("delay relay cannot listen on 127.0.0.1:\(route.listen): \(reason)")
            }
            listeners.append(listener)
            let upstream = route.upstream
            Thread.detachNewThread { [self] in accept(on: listener, upstream: upstream) }
        }
    }

    func setDelay(milliseconds: Int) {
        delayMicroseconds.withLock { $0 = Int64(milliseconds) * 1_000 }
    }

    /// Closes the listeners and every relayed connection.
    func stop() {
        lock.lock()
        stopped = true
        for descriptor in listeners + connections { shutdown(descriptor, Int32(SHUT_RDWR)) }
        lock.unlock()
    }

    private static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        return address
    }

    private func accept(on listener: Int32, upstream: Int) {
        while true {
            let client = Glibc.accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = Self.loopback(upstream)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            lock.lock()
            let open = !stopped && connected == 0
            if open { connections += [client, server] }
            lock.unlock()
            guard open else {
                close(client)
                close(server)
                continue
            }
            var one: Int32 = 1
            for descriptor in [client, server] {
                setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            let link = Link(client, server) { [self] in
                lock.lock()
                connections.removeAll { $0 == client || $0 == server }
                close(client)
                close(server)
                lock.unlock()
            }
            relay(from: client, to: server, link: link)
            relay(from: server, to: client, link: link)
        }
    }

    /// Both descriptors of one relayed connection, closed (by `close`) when
    /// the last of its four threads finishes.
    private final class Link: @unchecked Sendable {
        private let lock = NSLock()
        private var running = 4
        private let descriptors: (Int32, Int32)
        private let close: () -> Void

        init(_ first: Int32, _ second: Int32, close: @escaping () -> Void) {
            descriptors = (first, second)
            self.close = close
        }

        /// Ends the connection both ways; the other direction's reader wakes up.
        func end() {
            shutdown(descriptors.0, Int32(SHUT_RDWR))
            shutdown(descriptors.1, Int32(SHUT_RDWR))
        }

        func threadFinished() {
            lock.lock()
            running -= 1
            let last = running == 0
            lock.unlock()
            if last { close() }
        }
    }

    /// Chunks read from one side, each due at its read time plus the delay.
    private final class Pending: @unchecked Sendable {
        private let condition = NSCondition()
        private var chunks: [(due: Int64, bytes: [UInt8])] = []
        private var ended = false

        func add(_ bytes: [UInt8], due: Int64) {
            condition.lock()
            chunks.append((due, bytes))
            condition.signal()
            condition.unlock()
        }

        func end() {
            condition.lock()
            ended = true
            condition.signal()
            condition.unlock()
        }

        /// The next chunk, or nil once the reader ended and all were taken.
        func next() -> (due: Int64, bytes: [UInt8])? {
            condition.lock()
            defer { condition.unlock() }
            while chunks.isEmpty && !ended { condition.wait() }
            return chunks.isEmpty ? nil : chunks.removeFirst()
        }
    }

    private func relay(from source: Int32, to destination: Int32, link: Link) {
        let pending = Pending()
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 64 * 1_024)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                pending.add(Array(buffer[0..<count]), due: Self.microseconds() + delayMicroseconds.value)
            }
            pending.end()
            link.threadFinished()
        }
        Thread.detachNewThread {
            while let chunk = pending.next() {
                let wait = chunk.due - Self.microseconds()
                if wait > 0 { usleep(useconds_t(wait)) }
                guard Self.writeAll(chunk.bytes, to: destination) else { break }
            }
            link.end()
            link.threadFinished()
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    private static func microseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }
}
