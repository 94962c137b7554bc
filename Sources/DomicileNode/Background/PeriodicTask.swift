import DomicileModel

/// Work the node runs on a schedule, from start until stopped: the first
/// run one interval after the start.
final class PeriodicTask: Sendable {
    private let task = Locked<Task<Void, Never>?>(nil)

    func start(everyMilliseconds interval: Int64, _ body: @escaping @Sendable () async -> Void) {
        let nanoseconds = UInt64(max(1, interval)) * 1_000_000
        task.withLock {
            $0 = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: nanoseconds)
                    guard !Task.isCancelled else { return }
                    await body()
                }
            }
        }
    }

    /// Cancels the schedule and waits for a run in progress to end.
    func stop() async {
        let running = task.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        running?.cancel()
        await running?.value
    }
}
