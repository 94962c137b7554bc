import DomicileNet
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback peer that accepts connections and never answers: for
/// deadlines and cancellation. It can tell when a client closed one.
final class SilentPeer: @unchecked Sendable {
    let address: SocketAddress
    private let listener: Int32
    private var accepted: [Int32] = []

    init() throws {
        listener = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), backlog: 64)
        address = try SocketAddress.localAddress(of: listener)
    }

    deinit {
        accepted.forEach(closeDescriptor)
        closeDescriptor(listener)
    }

    /// The next connection a client made, accepted (nil if none in time).
    func acceptNext(withinSeconds seconds: Int32 = 10) -> Int32? {
        guard Self.poll(listener, seconds: seconds), case .done(let descriptor)? = try? Socket.accept(listener) else { return nil }
        accepted.append(descriptor)
        return descriptor
    }

    /// Reads (and drops) what the client sent until it closes the
    /// connection; false if it is still open after `seconds`.
    func readsEndOfStream(_ descriptor: Int32, withinSeconds seconds: Int32 = 10) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while Self.poll(descriptor, seconds: seconds) {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
            if count < 0 && errno != EAGAIN && errno != EINTR { return false }
        }
        return false
    }

    private static func poll(_ descriptor: Int32, seconds: Int32) -> Bool {
        var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return Glibc.poll(&request, 1, seconds * 1_000) > 0
    }
}
