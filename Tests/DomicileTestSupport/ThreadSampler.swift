import Foundation

/// Counts the process's threads (`/proc/self/task`) from a thread of its
/// own until stopped, keeping the largest count seen.
public final class ThreadSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var highest = 0
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    /// Threads of this process now (the sampler's own included once started).
    public static var currentCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    public init() {
        let thread = Thread { [self] in
            while lock.withLock({ !stopping }) {
                let count = Self.currentCount
                lock.withLock { highest = max(highest, count) }
                usleep(2_000)
            }
            done.signal()
        }
        thread.start()
        while lock.withLock({ highest == 0 }) { usleep(1_000) }
    }

    /// Stops sampling; the largest thread count seen.
    public func stop() -> Int {
        lock.withLock { stopping = true }
        done.wait()
        return lock.withLock { highest }
    }
}
