import DomicileModel
import Foundation

/// The added delay and loss of the link to one peer, for a WAN emulated in
/// Domicile's own transports (`cluster/up --wan`; docs/OPERATIONS.md,
/// "A WAN on one machine").
public struct LinkShape: Sendable, Equatable {
    /// Added to every message in each direction: half the link's round trip.
    public var oneWayMicroseconds: Int64
    /// The share of datagrams lost, 0 to 1. Streams are delayed, never cut.
    public var loss: Double

    public init(oneWayMicroseconds: Int64, loss: Double = 0) {
        precondition(oneWayMicroseconds >= 0 && (0...1).contains(loss), "a link's delay is not negative and its loss a share")
        self.oneWayMicroseconds = oneWayMicroseconds
        self.loss = loss
    }

    /// Half of `roundTripMilliseconds` each way, and `lossPercent` of the datagrams lost.
    public init(roundTripMilliseconds: Double, lossPercent: Double = 0) {
        self.init(oneWayMicroseconds: Int64((roundTripMilliseconds * 500).rounded()), loss: lossPercent / 100)
    }
}

/// Shapes the links to the peers it lists, as `cockroach demo --global`
/// does in its RPC layer: what leaves for a listed peer waits the link's
/// one-way time first (a datagram before it is sent; an HTTP request before
/// it is written, and its response before it is handed back; a push-pull
/// frame, and its reply), and datagrams are lost at the link's rate. Every
/// delayed message goes through one delay line in the order it was sent, so
/// a connection's order is kept. Peers not listed (this node's region) are
/// not touched; a node without a `wan` section has no shaper at all.
public final class LinkShaper: Sendable {
    private let links: [SocketAddress: LinkShape]
    private let line = DelayLine(name: "wan-delay")

    public init(links: [SocketAddress: LinkShape]) {
        self.links = links
    }

    /// Peer addresses listed (shaped or not).
    public var peerCount: Int { links.count }

    /// The link to `peer`, or nil when it is not shaped.
    public func shape(to peer: SocketAddress) -> LinkShape? {
        guard let shape = links[peer], shape.oneWayMicroseconds > 0 || shape.loss > 0 else { return nil }
        return shape
    }

    /// Runs `body` once the one-way time to `peer` has passed (at once, on
    /// the caller's thread, when the link is not shaped).
    public func afterOneWay(to peer: SocketAddress, _ body: @escaping @Sendable () -> Void) {
        guard let shape = shape(to: peer), shape.oneWayMicroseconds > 0 else { return body() }
        line.schedule(afterMicroseconds: shape.oneWayMicroseconds, body)
    }

    /// Waits out the one-way time to `peer`, or `limitMicroseconds` if that
    /// is shorter; returns whether the whole one-way time passed.
    @discardableResult
    public func waitOneWay(to peer: SocketAddress, limitMicroseconds: Int64 = .max) async -> Bool {
        guard let shape = shape(to: peer), shape.oneWayMicroseconds > 0 else { return true }
        let wait = max(0, min(shape.oneWayMicroseconds, limitMicroseconds))
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            line.schedule(afterMicroseconds: wait) { continuation.resume() }
        }
        return wait == shape.oneWayMicroseconds
    }

    /// Whether the network loses the next datagram to `peer`.
    public func losesDatagram(to peer: SocketAddress) -> Bool {
        guard let loss = shape(to: peer)?.loss, loss > 0 else { return false }
        return Double.random(in: 0..<1) < loss
    }
}

/// Runs closures at their due time on a thread of its own: in order of due
/// time, and of scheduling for the same due time (the due time is taken
/// under the lock, so one delay keeps the order of the calls that use it).
final class DelayLine: Sendable {
    private struct Item: Sendable {
        let due: UInt64
        let body: @Sendable () -> Void
    }

    private struct State: Sendable {
        /// By due time; equal due times in the order they were scheduled.
        var items: [Item] = []
        var started = false
        var stopped = false
    }

    private let name: String
    private let state = Locked(State())
    private let wake = DispatchSemaphore(value: 0)

    init(name: String) {
        self.name = name
    }

    deinit {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    func schedule(afterMicroseconds delay: Int64, _ body: @escaping @Sendable () -> Void) {
        let (start, earliest) = state.withLock { state -> (Bool, Bool) in
            let item = Item(due: DispatchTime.now().uptimeNanoseconds + UInt64(max(0, delay)) * 1_000, body: body)
            // After every item due no later: a later call never overtakes an earlier one with the same delay.
            var low = 0, high = state.items.count
            while low < high {
                let middle = (low + high) / 2
                if state.items[middle].due <= item.due { low = middle + 1 } else { high = middle }
            }
            state.items.insert(item, at: low)
            defer { state.started = true }
            return (!state.started, low == 0)
        }
        if start { startThread() } else if earliest { wake.signal() }
    }

    /// The thread holds the state and the semaphore, not the line, so the line's deinit stops it.
    private func startThread() {
        let state = self.state, wake = self.wake, name = self.name
        let thread = Thread {
            nameCurrentThread(name)
            while true {
                let (ready, next, stopped) = state.withLock { state -> ([Item], UInt64?, Bool) in
                    let now = DispatchTime.now().uptimeNanoseconds
                    let count = state.items.prefix { $0.due <= now }.count
                    let ready = Array(state.items.prefix(count))
                    state.items.removeFirst(count)
                    return (ready, state.items.first?.due, state.stopped)
                }
                if stopped { return }
                for item in ready { item.body() }
                guard ready.isEmpty else { continue }
                if let next { _ = wake.wait(timeout: DispatchTime(uptimeNanoseconds: next)) } else { wake.wait() }
            }
        }
        thread.start()
    }
}
