import CLinux
import DomicileModel
import Foundation

/// Something registered with an event loop, called on the loop's thread.
protocol Selectable: AnyObject {
    func handle(events: UInt32)
}

/// One thread running `epoll_wait`. Everything registered with a loop is
/// touched only on that loop's thread; other threads hand work to it with
/// `execute`, which wakes the loop through an eventfd.
final class EventLoop: @unchecked Sendable {
    /// How often `tick` handlers run: the resolution of every timeout.
    static let tickMilliseconds: Int32 = 50
    static let eventsPerWaitMax = 256

    let name: String
    private let epoll: Int32
    private let wakeDescriptor: Int32
    private let inbox = Locked(Inbox())
    private let finished = DispatchSemaphore(value: 0)

    private struct Inbox: Sendable {
        var tasks: [@Sendable () -> Void] = []
        var wakePending = false
        var stopped = false
    }

    // Loop-thread state.
    private var handlers: [Selectable?] = []
    private var tickHandlers: [(Int64) -> Void] = []
    private var stopping = false
    /// Monotonic milliseconds, refreshed after every wait.
    private(set) var now: Int64 = monotonicMilliseconds()

    init(name: String) throws(SystemError) {
        self.name = name
        epoll = try syscallValue("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        do {
            wakeDescriptor = try syscallValue("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        } catch {
            closeDescriptor(epoll)
            throw error
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeDescriptor
        _ = try syscallValue("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_ADD, wakeDescriptor, &event) }
    }

    func start() {
        let thread = Thread { [self] in
            nameCurrentThread(name)
            Self.holdBrokenPipeSignals()
            run()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// OpenSSL writes to a TLS socket with write(2), not send(MSG_NOSIGNAL):
    /// a peer gone away raises SIGPIPE on the writing thread, which kills a
    /// process that does not ignore it (a client-only process: the CLI, an
    /// application using DomicileClient). Blocked on the loop's thread, the
    /// signal stays pending there, harmless, and the write fails with EPIPE.
    private static func holdBrokenPipeSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Runs `task` on the loop's thread soon. Safe from any thread. A task
    /// accepted is run, even by a loop that is stopping; a task handed to a
    /// stopped loop is dropped, and then `execute` returns false.
    @discardableResult
    func execute(_ task: @escaping @Sendable () -> Void) -> Bool {
        let (accepted, needsWake) = inbox.withLock { inbox -> (Bool, Bool) in
            guard !inbox.stopped else { return (false, false) }
            inbox.tasks.append(task)
            defer { inbox.wakePending = true }
            return (true, !inbox.wakePending)
        }
        if needsWake {
            var one: UInt64 = 1
            _ = withUnsafeBytes(of: &one) { write(wakeDescriptor, $0.baseAddress, 8) }
        }
        return accepted
    }

    /// Stops the loop after the current iteration and waits for its thread.
    func stop() {
        requestStop()
        finished.wait()
    }

    /// Stops the loop after the current iteration, without waiting (for a
    /// `deinit`, which must not block on another thread).
    func requestStop() {
        execute { [self] in stopping = true }
    }

    // MARK: Loop thread only

    func register(_ descriptor: Int32, _ handler: Selectable, events: UInt32) throws(SystemError) {
        var event = epoll_event()
        event.events = events
        event.data.fd = descriptor
        _ = try syscallValue("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_ADD, descriptor, &event) }
        let index = Int(descriptor)
        if index >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: index - handlers.count + 1)) }
        handlers[index] = handler
    }

    /// `register`, for a descriptor the handler owns: on failure it is closed.
    func adopt(_ descriptor: Int32, _ handler: Selectable, events: UInt32) throws(SystemError) {
        do {
            try register(descriptor, handler, events: events)
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
    }

    func modify(_ descriptor: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = descriptor
        _ = try? syscallValue("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_MOD, descriptor, &event) }
    }

    /// Removes `descriptor` (before it is closed).
    func deregister(_ descriptor: Int32) {
        _ = try? syscallValue("epoll_ctl") { epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, nil) }
        if Int(descriptor) < handlers.count { handlers[Int(descriptor)] = nil }
    }

    /// `handler` is called every tick with the current time.
    func onTick(_ handler: @escaping (Int64) -> Void) {
        tickHandlers.append(handler)
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: Self.eventsPerWaitMax)
        var nextTick = now + Int64(Self.tickMilliseconds)
        while !stopping {
            let count = events.withUnsafeMutableBufferPointer { buffer in
                epoll_wait(epoll, buffer.baseAddress, Int32(buffer.count), Self.tickMilliseconds)
            }
            now = monotonicMilliseconds()
            if count > 0 {
                for index in 0..<Int(count) {
                    let descriptor = events[index].data.fd
                    if descriptor == wakeDescriptor {
                        drainWake()
                    } else if Int(descriptor) < handlers.count, let handler = handlers[Int(descriptor)] {
                        handler.handle(events: events[index].events)
                    }
                }
            } else if count < 0 && errno != EINTR {
                preconditionFailure("epoll_wait failed: \(SystemError(function: "epoll_wait", errno: errno))")
            }
            runInbox()
            if now >= nextTick {
                for handler in tickHandlers { handler(now) }
                nextTick = now + Int64(Self.tickMilliseconds)
            }
        }
        inbox.withLock { $0.stopped = true }
        runInbox()
        // What was registered may refer back to its owner, which refers to the loop.
        handlers.removeAll()
        tickHandlers.removeAll()
        closeDescriptor(wakeDescriptor)
        closeDescriptor(epoll)
    }

    private func drainWake() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(wakeDescriptor, $0.baseAddress, 8) }
    }

    private func runInbox() {
        let tasks = inbox.withLock { inbox -> [@Sendable () -> Void] in
            inbox.wakePending = false
            defer { inbox.tasks.removeAll(keepingCapacity: true) }
            return inbox.tasks
        }
        for task in tasks { task() }
    }
}

/// Names the calling OS thread (what `top -H` and perf show; 15 bytes at
/// most). Foundation's `Thread.name` set from outside does not reach the OS.
public func nameCurrentThread(_ name: String) {
    domicile_set_thread_name(String(name.prefix(15)))
}
