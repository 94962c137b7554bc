import Synchronization

/// A value behind a mutex, as a class so it can be shared and captured
/// (`Mutex` itself is non-copyable). Keep critical sections short: no I/O
/// and no `await` inside `withLock`.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) {
        mutex = Mutex(value)
    }

    public func withLock<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { try body(&$0) }
    }

    public var value: Value { mutex.withLock { $0 } }
}
