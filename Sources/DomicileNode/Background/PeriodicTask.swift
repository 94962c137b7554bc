import DomicileModel
import Foundation

/// Work the node runs on a schedule, from start until stopped: the first
/// run one interval after the start, and at once after `wake()` (work that
/// should not wait for the next interval).
final class PeriodicTask: Sendable {
    private struct State {
        var task: Task<Void, Never>?
        /// The run loop's pause, while it waits.
        var pause: CheckedContinuation<Void, Never>?
        /// `wake()` came while no pause was waiting: the next one ends at once.
        var woken = false
        var stopped = false
    }

    private let state = Locked(State())

    func start(everyMilliseconds interval: Int64, _ body: @escaping @Sendable () async -> Void) {
        let milliseconds = Int(max(1, interval))
        let task = Task { [self] in
            while true {
                await pause(milliseconds)
                if state.withLock({ $0.stopped }) { return }
                await body()
            }
        }
        state.withLock { $0.task = task }
    }

    /// Runs the body now, or as soon as the run in progress ends.
    func wake() {
        let pause = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let pause = state.pause else {
                state.woken = true
                return nil
            }
            state.pause = nil
            return pause
        }
        pause?.resume()
    }

    /// Stops the schedule and waits for a run in progress to end.
    func stop() async {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.stopped = true
            defer { state.task = nil }
            return state.task
        }
        wake()
        await task?.value
    }

    /// Waits `milliseconds`, or until `wake()`. (A timer of an earlier pause
    /// may end a later one early: one run sooner, never one missed.)
    private func pause(_ milliseconds: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.woken || state.stopped {
                    state.woken = false
                    return true
                }
                state.pause = continuation
                return false
            }
            if now { return continuation.resume() }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { [weak self] in self?.endPause() }
        }
    }

    private func endPause() {
        let pause = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.pause = nil }
            return state.pause
        }
        pause?.resume()
    }
}
