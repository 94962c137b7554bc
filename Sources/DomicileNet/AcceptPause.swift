import CLinux
import Glibc

/// What a listener does when `accept` fails for want of a resource
/// (descriptors, buffers): it stops watching the listening socket until the
/// loop's next tick. The socket stays readable while the resource is short,
/// so a level-triggered loop would otherwise wake at once and spin.
/// `ECONNABORTED` (the peer gave up while queued) is not a shortage: the
/// next `accept` may succeed at once.
struct AcceptPause {
    private(set) var isPaused = false

    static func isShortage(_ error: SystemError) -> Bool {
        error.errno != ECONNABORTED && error.errno != EPROTO && error.errno != EPERM
    }

    /// After a failed accept: stops watching `listener` if the failure is a shortage.
    mutating func failed(_ error: SystemError, listener: Int32, on loop: EventLoop) {
        guard !isPaused, Self.isShortage(error) else { return }
        isPaused = true
        loop.deregister(listener)
    }

    /// On the loop's tick: watches `listener` again.
    mutating func resume(listener: Int32, handler: Selectable, events: UInt32, on loop: EventLoop) {
        guard isPaused else { return }
        do {
            try loop.register(listener, handler, events: events)
            isPaused = false
        } catch {
            // Still short of something (epoll's own memory): try again at the next tick.
        }
    }
}
