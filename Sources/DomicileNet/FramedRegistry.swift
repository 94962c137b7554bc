import CLinux
import DomicileModel

/// A `FramedListener`'s listening socket and connections, on its loop's
/// thread: accepts up to `connectionsMax` served connections at once (more
/// are closed on accept), starts up to `connectionsMax` calls at once (more
/// fail with `busy`), and ends whichever passes its deadline.
final class FramedRegistry: Selectable, @unchecked Sendable {
    let loop: EventLoop
    let connectionsMax: Int
    let frameBytesMax: Int
    let timeoutMilliseconds: Int64
    /// One read buffer for the loop: a connection copies out what it read.
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Served and called connections open, for tests.
    let openCounts: Locked<FramedListener.OpenConnections>
    /// Owned from `init`: closed by `closeAll`.
    private let listener: Int32
    private var answer: (([UInt8]) -> [UInt8]?)?
    private var acceptPause = AcceptPause()
    private var served: [ObjectIdentifier: FramedConnection] = [:]
    private var called: [ObjectIdentifier: FramedConnection] = [:]
    private var closed = false

    init(listener: Int32, loop: EventLoop, connectionsMax: Int, frameBytesMax: Int, timeoutMilliseconds: Int64,
         openCounts: Locked<FramedListener.OpenConnections>) {
        self.listener = listener
        self.loop = loop
        self.connectionsMax = connectionsMax
        self.frameBytesMax = frameBytesMax
        self.timeoutMilliseconds = timeoutMilliseconds
        self.openCounts = openCounts
        readBuffer = .allocate(byteCount: 64 * 1_024, alignment: 16)
        loop.execute { [self] in loop.onTick { [self] now in tick(now) } }
    }

    deinit { readBuffer.deallocate() }

    /// Starts accepting, answering each request with `answer`.
    func accept(answering answer: @escaping ([UInt8]) -> [UInt8]?) {
        guard !closed, self.answer == nil else { return }
        do {
            try loop.register(listener, self, events: EPOLLIN.rawValue)
        } catch {
            preconditionFailure("cannot watch the listening socket: \(error)")
        }
        self.answer = answer
    }

    /// The listening socket is readable: accept what is pending.
    func handle(events: UInt32) {
        guard !closed, let answer else { return }
        for _ in 0..<64 {
            let accepted: IOResult<Int32>
            do { accepted = try Socket.accept(listener) } catch {
                acceptPause.failed(error, listener: listener, on: loop)
                return
            }
            guard case .done(let descriptor) = accepted else { return }
            guard served.count < connectionsMax,
                  let connection = try? FramedConnection(accepted: descriptor, answer: answer, registry: self) else {
                closeDescriptor(descriptor)
                continue
            }
            served[ObjectIdentifier(connection)] = connection
            publish()
        }
    }

    /// Connects to `address`, sends `request`, and hands the reply (or the
    /// failure) to `reply`, on the loop's thread.
    func call(_ address: SocketAddress, request: [UInt8], reply: @escaping (Result<[UInt8], FramedConnection.Failure>) -> Void) {
        guard !closed else { return reply(.failure(.closed)) }
        guard called.count < connectionsMax else { return reply(.failure(.busy)) }
        guard let connection = try? FramedConnection(calling: address, request: request, registry: self, reply: reply) else {
            return reply(.failure(.connect))
        }
        called[ObjectIdentifier(connection)] = connection
        publish()
    }

    func connectionClosed(_ connection: FramedConnection) {
        served[ObjectIdentifier(connection)] = nil
        called[ObjectIdentifier(connection)] = nil
        publish()
    }

    private func tick(_ now: Int64) {
        if !closed, answer != nil { acceptPause.resume(listener: listener, handler: self, events: EPOLLIN.rawValue, on: loop) }
        for connection in Array(served.values) + Array(called.values) where now >= connection.deadline {
            connection.end(.timeout)
        }
    }

    /// Stops accepting, closes the listening socket and ends every connection.
    func closeAll() {
        guard !closed else { return }
        closed = true
        if answer != nil, !acceptPause.isPaused { loop.deregister(listener) }
        closeDescriptor(listener)
        // The answer usually refers to the listener's owner, which refers to the listener.
        answer = nil
        for connection in Array(served.values) + Array(called.values) { connection.end(.closed) }
    }

    private func publish() {
        openCounts.withLock { $0 = FramedListener.OpenConnections(served: served.count, called: called.count) }
    }
}
