import CLinux

/// One push-pull TCP connection on a `FramedListener`'s loop: a frame one
/// way and a frame back, each `u32 length (big-endian) · bytes`, within one
/// deadline; then it closes. Served (accepted): read a frame, write the
/// handler's answer. Called (`FramedListener.exchange`): connect, write the
/// request, read the reply. Touched only on the loop's thread.
public final class FramedConnection: Selectable {
    public enum Failure: Error, Equatable, Sendable {
        case connect, timeout, closed, tooLarge
        /// Every outbound slot is taken.
        case busy
    }

    enum Role {
        case served(answer: ([UInt8]) -> [UInt8]?)
        case called(reply: (Result<[UInt8], Failure>) -> Void)
    }

    private enum Phase {
        case connecting
        case writing
        case reading
        case closed
    }

    let role: Role
    let deadline: Int64
    private let descriptor: Int32
    private unowned let registry: FramedRegistry
    private var phase: Phase
    private var output = PendingOutput()
    private var input = InputBuffer()
    private var interest: UInt32

    /// An accepted connection, reading its request.
    init(accepted descriptor: Int32, answer: @escaping ([UInt8]) -> [UInt8]?, registry: FramedRegistry) throws(SystemError) {
        self.descriptor = descriptor
        self.registry = registry
        role = .served(answer: answer)
        deadline = registry.loop.now + registry.timeoutMilliseconds
        phase = .reading
        interest = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        Socket.setNoDelay(descriptor)
        try registry.loop.register(descriptor, self, events: interest)
    }

    /// A connection to `address` that will send `request` and read the reply.
    init(calling address: SocketAddress, request: [UInt8], registry: FramedRegistry,
         reply: @escaping (Result<[UInt8], Failure>) -> Void) throws(SystemError) {
        self.registry = registry
        role = .called(reply: reply)
        deadline = registry.loop.now + registry.timeoutMilliseconds
        phase = .connecting
        interest = EPOLLOUT.rawValue | EPOLLRDHUP.rawValue
        output.append(Self.frame(request))
        descriptor = try Socket.startConnect(to: address)
        try registry.loop.adopt(descriptor, self, events: interest)
    }

    /// `u32 length · bytes`.
    static func frame(_ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { Array($0) } + bytes
    }

    // MARK: Events

    public func handle(events: UInt32) {
        switch phase {
        case .closed:
            return
        case .connecting:
            if Socket.connectError(descriptor) != nil { return end(.connect) }
            guard events & EPOLLOUT.rawValue != 0 else { return }
            Socket.setNoDelay(descriptor)
            phase = .writing
            write()
        case .writing:
            write()
        case .reading:
            read()
        }
    }

    private func write() {
        let done: Bool
        do {
            done = try output.flush(to: descriptor)
        } catch {
            return end(.closed)
        }
        guard done else { return watch(EPOLLOUT.rawValue | EPOLLRDHUP.rawValue) }
        switch role {
        case .served:
            end(nil)
        case .called:
            phase = .reading
            watch(EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
        }
    }

    private func read() {
        let buffer = registry.readBuffer
        while true {
            let result = Result { () throws(SystemError) in try Socket.read(descriptor, into: buffer) }
            switch result {
            case .failure, .success(.done(0)):
                return end(.closed)
            case .success(.wouldBlock):
                return
            case .success(.done(let count)):
                input.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                switch takeFrame() {
                case .failure(let failure): return end(failure)
                case .success(let frame?): return received(frame)
                case .success(nil): continue
                }
            }
        }
    }

    /// The whole frame once it is in, nil until then.
    private func takeFrame() -> Result<[UInt8]?, Failure> {
        guard input.count >= 4 else { return .success(nil) }
        let length = (0..<4).reduce(0) { $0 << 8 | Int(input[$1]) }
        guard length <= registry.frameBytesMax else { return .failure(.tooLarge) }
        guard input.count >= 4 + length else { return .success(nil) }
        input.consume(4)
        return .success(input.take(length))
    }

    private func received(_ frame: [UInt8]) {
        switch role {
        case .served(let answer):
            guard let reply = answer(frame) else { return end(nil) }
            output.append(Self.frame(reply))
            phase = .writing
            write()
        case .called(let reply):
            close()
            reply(.success(frame))
        }
    }

    /// Ends the connection; a call gets `failure` (or had its reply).
    func end(_ failure: Failure?) {
        guard !isClosed else { return }
        close()
        if case .called(let reply) = role { reply(.failure(failure ?? .closed)) }
    }

    var isClosed: Bool {
        if case .closed = phase { return true }
        return false
    }

    private func close() {
        phase = .closed
        registry.loop.deregister(descriptor)
        closeDescriptor(descriptor)
        registry.connectionClosed(self)
    }

    private func watch(_ events: UInt32) {
        guard events != interest else { return }
        registry.loop.modify(descriptor, events: events)
        interest = events
    }
}
