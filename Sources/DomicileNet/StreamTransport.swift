import CLinux
import DomicileModel
import Foundation

/// A connection of a `StreamTransport`, unique for the transport's life.
public struct StreamID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public var description: String { "stream#\(rawValue)" }
}

/// Why a stream closed.
public enum StreamClose: String, Sendable, CaseIterable {
    /// The dial failed (refused, unreachable).
    case connectFailed = "connect_failed"
    /// The peer closed (or reset) between frames.
    case peerClosed = "peer_closed"
    /// The peer closed in the middle of a frame.
    case truncated
    /// A frame's length is over `frameBytesMax`.
    case tooLarge = "too_large"
    /// Closed on this side (`close(_:)`, or the transport stopped).
    case local
}

/// What a `StreamTransport` tells its owner, on the loop's thread. The
/// callbacks must not block.
public protocol StreamTransportDelegate: AnyObject {
    func accepted(_ stream: StreamID)
    func connected(_ stream: StreamID)
    func received(_ frame: [UInt8], on stream: StreamID)
    /// Everything written on `stream` has been taken by the socket.
    func drained(_ stream: StreamID)
    func closed(_ stream: StreamID, _ reason: StreamClose)
    /// Every `EventLoop.tickMilliseconds`, with monotonic milliseconds.
    func tick(_ now: Int64)
}

/// Persistent framed TCP connections on one event loop: a listening socket
/// whose accepted connections stay open, and outbound connections, each
/// carrying length-prefixed frames both ways (`u32 length · bytes`, at most
/// `frameBytesMax`). No thread per connection: one loop thread runs them all.
/// The protocol spoken over the frames is the delegate's; every method but
/// `init`, `execute` and `stop` runs on the loop's thread (inside `execute`
/// or a delegate callback).
public final class StreamTransport: Selectable, @unchecked Sendable {
    public let localAddress: SocketAddress
    public let frameBytesMax: Int
    /// Accepted connections open at once; more are closed on accept.
    public let acceptedMax: Int
    let loop: EventLoop
    let readBuffer: UnsafeMutableRawBufferPointer
    fileprivate(set) weak var delegate: (any StreamTransportDelegate)?
    private let listener: Int32
    private var connections: [StreamID: StreamConnection] = [:]
    private var acceptedCount = 0
    private var acceptPause = AcceptPause()
    private var acceptedIDs: Set<StreamID> = []
    private var nextID: UInt64 = 1
    private var stopped = false
    private let stopOnce = Locked(false)

    /// Binds `address` (port 0 picks a free port) and starts the loop; it
    /// accepts once `start` names the delegate.
    public init(bind address: SocketAddress, frameBytesMax: Int, acceptedMax: Int, name: String) throws(SystemError) {
        let listener = try Socket.listen(on: address, backlog: 64)
        do {
            localAddress = try SocketAddress.local(of: listener)
            loop = try EventLoop(name: name)
        } catch {
            closeDescriptor(listener)
            throw error
        }
        self.listener = listener
        self.frameBytesMax = frameBytesMax
        self.acceptedMax = acceptedMax
        readBuffer = .allocate(byteCount: 256 * 1_024, alignment: 16)
        loop.start()
    }

    deinit { readBuffer.deallocate() }

    /// Starts accepting and ticking; `delegate` is held weakly.
    public func start(_ delegate: any StreamTransportDelegate & Sendable) {
        loop.execute { [self] in
            self.delegate = delegate
            do {
                try loop.register(listener, self, events: EPOLLIN.rawValue)
            } catch {
                preconditionFailure("cannot watch the listening socket: \(error)")
            }
            loop.onTick { [weak self] now in
                guard let self, !self.stopped else { return }
                self.acceptPause.resume(listener: self.listener, handler: self, events: EPOLLIN.rawValue, on: self.loop)
                self.delegate?.tick(now)
            }
        }
    }

    /// Runs `task` on the loop's thread; false once the transport stopped.
    @discardableResult
    public func execute(_ task: @escaping @Sendable () -> Void) -> Bool {
        loop.execute(task)
    }

    /// Monotonic milliseconds as of the loop's last wake (loop thread).
    public var now: Int64 { loop.now }

    /// Starts a connection to `address` (loop thread). `connected` or
    /// `closed(.connectFailed)` follows; nil when no socket could be made.
    public func connect(to address: SocketAddress) -> StreamID? {
        guard !stopped else { return nil }
        let id = makeID()
        guard let connection = try? StreamConnection(calling: address, id: id, transport: self) else { return nil }
        connections[id] = connection
        return id
    }

    /// Queues `frame` on `stream` and writes what the socket takes (loop
    /// thread); ignored when it closed. With `flush` false the frame waits
    /// for the next write or `flush(_:)`, so a batch costs one system call.
    public func write(_ frame: [UInt8], on stream: StreamID, flush: Bool = true) {
        connections[stream]?.write(frame, flush: flush)
    }

    /// Writes what `write(_:on:flush:)` left queued on `stream`.
    public func flush(_ stream: StreamID) {
        connections[stream]?.flush()
    }

    /// Bytes written on `stream` that the socket has not taken yet.
    public func pendingBytes(on stream: StreamID) -> Int {
        connections[stream]?.pendingBytes ?? 0
    }

    /// Closes `stream` (loop thread); the delegate hears `closed(.local)`.
    public func close(_ stream: StreamID) {
        connections[stream]?.end(.local)
    }

    /// Stops accepting, closes every connection and stops the loop;
    /// `waiting` false returns at once (for a `deinit`, which may run on
    /// the loop's own thread and must not wait for it).
    public func stop(waiting: Bool = true) {
        let first = stopOnce.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        loop.execute { [self] in
            stopped = true
            if delegate != nil, !acceptPause.isPaused { loop.deregister(listener) }
            closeDescriptor(listener)
            for connection in Array(connections.values) { connection.end(.local) }
            delegate = nil
        }
        if waiting { loop.stop() } else { loop.requestStop() }
    }

    // MARK: Loop thread

    /// The listening socket is readable: accept what is pending.
    func handle(events: UInt32) {
        guard !stopped else { return }
        for _ in 0..<64 {
            let accepted: IOResult<Int32>
            do { accepted = try Socket.accept(listener) } catch {
                acceptPause.failed(error, listener: listener, on: loop)
                return
            }
            guard case .done(let descriptor) = accepted else { return }
            let id = makeID()
            guard acceptedIDs.count < acceptedMax,
                  let connection = try? StreamConnection(accepted: descriptor, id: id, transport: self) else {
                closeDescriptor(descriptor)
                continue
            }
            connections[id] = connection
            acceptedIDs.insert(id)
            delegate?.accepted(id)
        }
    }

    func connectionClosed(_ connection: StreamConnection, _ reason: StreamClose) {
        connections[connection.id] = nil
        acceptedIDs.remove(connection.id)
        delegate?.closed(connection.id, reason)
    }

    private func makeID() -> StreamID {
        defer { nextID += 1 }
        return StreamID(rawValue: nextID)
    }
}
