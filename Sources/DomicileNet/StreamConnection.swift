import CLinux

/// One persistent TCP connection of a `StreamTransport`: frames both ways,
/// each `u32 length (big-endian) · bytes`, for as long as both ends keep it.
/// Touched only on the transport's loop thread.
final class StreamConnection: Selectable, @unchecked Sendable {
    let id: StreamID
    private let descriptor: Int32
    private unowned let transport: StreamTransport
    private var connecting: Bool
    private var output = PendingOutput()
    private var input = InputBuffer()
    private var interest: UInt32
    private(set) var isClosed = false

    /// An accepted connection.
    init(accepted descriptor: Int32, id: StreamID, transport: StreamTransport) throws(SystemError) {
        self.id = id
        self.descriptor = descriptor
        self.transport = transport
        connecting = false
        interest = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        Socket.setNoDelay(descriptor)
        try transport.loop.register(descriptor, self, events: interest)
    }

    /// A connection being made to `address`.
    init(calling address: SocketAddress, id: StreamID, transport: StreamTransport) throws(SystemError) {
        self.id = id
        self.transport = transport
        connecting = true
        interest = EPOLLOUT.rawValue | EPOLLRDHUP.rawValue
        descriptor = try Socket.startConnect(to: address)
        try transport.loop.adopt(descriptor, self, events: interest)
    }

    /// Bytes queued for the socket and not yet taken by it.
    var pendingBytes: Int { output.count }

    /// Queues `frame` (length-prefixed) and writes what the socket takes.
    /// The delegate hears `drained` only from the loop, never from inside
    /// its own `write`, so it is never re-entered mid-update.
    /// `flush` false leaves the bytes queued for a later `write` or
    /// `flush()` (several frames, one system call).
    func write(_ frame: [UInt8], flush now: Bool = true) {
        guard !isClosed else { return }
        output.append(withUnsafeBytes(of: UInt32(frame.count).bigEndian) { Array($0) })
        output.append(frame)
        guard now, !connecting else { return }
        flush(notify: false)
    }

    /// Writes what is queued (see `write(_:flush:)`).
    func flush() {
        guard !isClosed, !connecting else { return }
        flush(notify: false)
    }

    func handle(events: UInt32) {
        guard !isClosed else { return }
        if connecting {
            if Socket.connectError(descriptor) != nil { return end(.connectFailed) }
            guard events & EPOLLOUT.rawValue != 0 else { return }
            Socket.setNoDelay(descriptor)
            connecting = false
            transport.delegate?.connected(id)
            guard !isClosed else { return }
            flush(notify: true)
            return
        }
        if events & EPOLLIN.rawValue != 0 || events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            read()
        }
        if !isClosed && events & EPOLLOUT.rawValue != 0 { flush(notify: true) }
    }

    private func flush(notify: Bool) {
        let done: Bool
        do {
            done = try output.flush(to: descriptor)
        } catch {
            // From inside `write` the delegate is mid-update: it hears of the end from the loop.
            guard notify else {
                transport.loop.execute { [self] in end(.peerClosed) }
                return
            }
            return end(.peerClosed)
        }
        watch(done ? EPOLLIN.rawValue | EPOLLRDHUP.rawValue : EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue)
        if done && notify { transport.delegate?.drained(id) }
    }

    private func read() {
        let buffer = transport.readBuffer
        // Bounded per wake, so one busy peer cannot starve the others.
        for _ in 0..<16 {
            let result = Result { () throws(SystemError) in try Socket.read(descriptor, into: buffer) }
            switch result {
            case .failure:
                return end(input.isEmpty ? .peerClosed : .truncated)
            case .success(.done(0)):
                return end(input.isEmpty ? .peerClosed : .truncated)
            case .success(.wouldBlock):
                return
            case .success(.done(let count)):
                input.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                while let frame = takeFrame() {
                    transport.delegate?.received(frame, on: id)
                    if isClosed { return }
                }
                if isClosed { return }
            }
        }
    }

    /// The next whole frame, nil until it is in; an oversize length ends the connection.
    private func takeFrame() -> [UInt8]? {
        guard input.count >= 4 else { return nil }
        let length = (0..<4).reduce(0) { $0 << 8 | Int(input[$1]) }
        guard length <= transport.frameBytesMax else {
            end(.tooLarge)
            return nil
        }
        guard input.count >= 4 + length else { return nil }
        input.consume(4)
        return input.take(length)
    }

    /// Closes the connection and tells the delegate why.
    func end(_ reason: StreamClose) {
        guard !isClosed else { return }
        isClosed = true
        transport.loop.deregister(descriptor)
        closeDescriptor(descriptor)
        transport.connectionClosed(self, reason)
    }

    private func watch(_ events: UInt32) {
        guard events != interest else { return }
        transport.loop.modify(descriptor, events: events)
        interest = events
    }
}
