import DomicileModel
import Foundation

/// Push-pull over TCP on one event loop: a listening socket whose
/// connections each carry one request frame and one reply frame (see
/// `FramedConnection`), and outbound `exchange`s on the same loop. At most
/// `connectionsMax` connections are served and `connectionsMax` called at
/// once, each within `timeoutMilliseconds`; no thread waits for any of them.
public final class FramedListener: Sendable {
    public struct OpenConnections: Sendable, Equatable {
        public var served = 0
        public var called = 0
    }

    public let localAddress: SocketAddress
    private let loop: EventLoop
    private let registry: FramedRegistry
    private let openCounts = Locked(OpenConnections())
    private let closed = Locked(false)
    /// Delays to the peers of other regions: the request frame and the reply each wait the link's one-way time.
    private let links: LinkShaper?

    /// Binds `address` (port 0 picks a free port) and starts the loop; it
    /// accepts once `start` says how to answer.
    public init(bind address: SocketAddress, connectionsMax: Int, frameBytesMax: Int, timeoutMilliseconds: Int64,
                name: String, links: LinkShaper? = nil) throws(SystemError) {
        self.links = links
        let listener = try Socket.listen(on: address, backlog: 64)
        do {
            localAddress = try SocketAddress.local(of: listener)
            loop = try EventLoop(name: name)
        } catch {
            closeDescriptor(listener)
            throw error
        }
        registry = FramedRegistry(listener: listener, loop: loop, connectionsMax: connectionsMax, frameBytesMax: frameBytesMax,
                                  timeoutMilliseconds: timeoutMilliseconds, openCounts: openCounts)
        loop.start()
    }

    /// Ends every connection and stops the loop without waiting for it: a
    /// deinit may run on the loop's own thread, which cannot wait for itself.
    deinit {
        guard !closed.value else { return }
        loop.execute { [registry] in registry.closeAll() }
        loop.requestStop()
    }

    /// Accepts connections, answering each request frame with what `answer`
    /// returns (nil: close without answering). `answer` runs on the loop's
    /// thread: it must not block.
    public func start(_ answer: @escaping @Sendable ([UInt8]) -> [UInt8]?) {
        loop.execute { [registry] in registry.accept(answering: answer) }
    }

    /// Connects to `address`, sends `request` as one frame and returns the
    /// reply frame, within the listener's timeout.
    public func exchange(_ request: [UInt8], with address: SocketAddress) async throws(FramedConnection.Failure) -> [UInt8] {
        await links?.waitOneWay(to: address)
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[UInt8], FramedConnection.Failure>, Never>) in
            let accepted = loop.execute { [registry] in
                registry.call(address, request: request) { continuation.resume(returning: $0) }
            }
            if !accepted { continuation.resume(returning: .failure(.closed)) }
        }
        if case .success = result { await links?.waitOneWay(to: address) }
        return try result.get()
    }

    /// Connections open now (for tests and metrics).
    public var openConnections: OpenConnections { openCounts.value }

    /// Stops accepting, ends every connection (calls fail with `closed`) and
    /// stops the loop.
    public func close() {
        let first = closed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        loop.execute { [registry] in registry.closeAll() }
        loop.stop()
    }
}
