import CLinux
import Foundation

/// The one thread that writes log lines to a descriptor.
///
/// Callers (event loops among them) only append to a bounded `LogQueue`
/// under a lock held for a copy; this thread takes the whole queue and does
/// the blocking `write(2)`s. When the reader of the pipe falls behind, the
/// queue fills and further lines are dropped and counted, never waited for;
/// once a batch is written, a line from `notice` says how many were dropped.
/// Being the only writer, it never splits or interleaves lines.
final class LogWriter: @unchecked Sendable {
    // Every stored `var` below is read and written only while holding `condition`.
    private let condition = NSCondition()
    private var queue: LogQueue
    /// A batch is taken and not yet written.
    private var writing = false
    private var closed = false

    private let descriptor: Int32
    private let notice: @Sendable (_ droppedLineCount: Int) -> String

    /// Starts the writer thread. `notice` formats the line that reports
    /// dropped lines.
    init(descriptor: Int32, linesMax: Int, bytesMax: Int, notice: @escaping @Sendable (Int) -> String) {
        self.descriptor = descriptor
        self.queue = LogQueue(linesMax: linesMax, bytesMax: bytesMax)
        self.notice = notice
        // The thread keeps the writer alive until `close` lets it finish.
        let thread = Thread { [self] in
            domicile_set_thread_name("log-writer")
            run()
        }
        thread.name = "log-writer"
        thread.start()
    }

    /// Queues one line (newline included); drops it if the queue is full.
    func submit(_ line: String) {
        var line = line
        line.withUTF8 { utf8 in
            condition.lock()
            defer { condition.unlock() }
            guard !closed else { return }
            if queue.append(utf8) { condition.broadcast() }
        }
    }

    var droppedLineCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.droppedTotal
    }

    /// Waits until everything queued so far is written, at most
    /// `timeoutMilliseconds`. Returns false if the time ran out (the reader
    /// of the pipe is not reading).
    @discardableResult
    func flush(timeoutMilliseconds: Int64) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeoutMilliseconds) / 1_000)
        condition.lock()
        defer { condition.unlock() }
        while !queue.isEmpty || writing {
            if !condition.wait(until: deadline) { return queue.isEmpty && !writing }
        }
        return true
    }

    /// Lets the thread write what is queued and end; later lines are ignored.
    func close() {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
    }

    private func run() {
        while let batch = nextBatch() {
            var bytes = batch.bytes
            if batch.droppedLineCount > 0 { bytes += Array(notice(batch.droppedLineCount).utf8) }
            let written = Self.writeAll(bytes, to: descriptor)
            condition.lock()
            writing = false
            if !written { queue.recordLost(lineCount: batch.lineCount) }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Blocks until something is queued; nil once closed and drained.
    private func nextBatch() -> LogQueue.Batch? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !closed { condition.wait() }
        if queue.isEmpty { return nil }
        writing = true
        return queue.take()
    }

    /// Writes every byte, waiting for room; false if the descriptor failed.
    /// Not `syscall`: its EBADF is "our bug", but a log descriptor is the
    /// world's (standard output may be closed by whoever started us), and a
    /// failed write costs the lines, never the process.
    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && errno == EAGAIN {
                    // A non-blocking descriptor (shared with a parent that set
                    // O_NONBLOCK): wait for room instead of spinning.
                    var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, 1_000)
                } else {
                    return false
                }
            }
            return true
        }
    }
}
