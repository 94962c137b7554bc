import Foundation

/// A bounded pool of dedicated threads for work that blocks (poll, connect).
///
/// Not Dispatch: libdispatch's global queues share their threads with Swift's
/// cooperative executor (one thread per core), so blocking them starves every
/// task in the process — including an in-process server answering the very
/// requests being waited on. Threads are started lazily up to `threadsMax`
/// and kept; jobs beyond that wait in a queue whose length callers bound.
public final class BlockingPool: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var jobs: [@Sendable () -> Void] = []
    private var threads = 0
    private var idle = 0
    private let threadsMax: Int
    private let name: String

    public init(name: String, threadsMax: Int) {
        precondition(threadsMax >= 1, "a blocking pool needs a thread")
        self.name = name
        self.threadsMax = threadsMax
    }

    public func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        let startThread = idle == 0 && threads < threadsMax
        if startThread { threads += 1 }
        condition.signal()
        condition.unlock()
        if startThread {
            let thread = Thread { [self] in
                nameCurrentThread(name)
                work()
            }
            thread.start()
        }
    }

    private func work() {
        while true {
            condition.lock()
            idle += 1
            while jobs.isEmpty { condition.wait() }
            idle -= 1
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
