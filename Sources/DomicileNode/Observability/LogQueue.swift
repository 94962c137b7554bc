/// Log lines waiting for the writer thread, bounded by count and bytes. A
/// value with no I/O: `LogWriter` holds it under its lock.
///
/// Lines are kept as one byte buffer, each ending in a newline, and taken all
/// at once. So room comes back only when the writer takes the whole queue,
/// and every line dropped meanwhile was logged after every line taken: the
/// writer reports the drop right after writing that batch, where the gap is.
struct LogQueue: Sendable {
    struct Batch: Sendable {
        /// Whole lines, in the order they were logged.
        var bytes: [UInt8]
        var lineCount: Int
        /// Lines refused since the previous batch was taken.
        var droppedLineCount: Int
    }

    let linesMax: Int
    let bytesMax: Int
    private var bytes: [UInt8] = []
    private(set) var lineCount = 0
    private var droppedSinceTaken = 0
    /// Every line refused or lost since the start (`/metrics`).
    private(set) var droppedTotal = 0

    init(linesMax: Int, bytesMax: Int) {
        precondition(linesMax >= 1 && bytesMax >= 1, "log queue limits must be positive")
        self.linesMax = linesMax
        self.bytesMax = bytesMax
    }

    /// True if nothing waits: no line and no drop to report.
    var isEmpty: Bool { lineCount == 0 && droppedSinceTaken == 0 }

    /// Queues `line` (one line, newline included), or counts it as dropped
    /// when the queue is full. Returns whether it was queued.
    @discardableResult
    mutating func append(_ line: some Collection<UInt8>) -> Bool {
        guard lineCount < linesMax, bytes.count + line.count <= bytesMax else {
            recordLost(lineCount: 1)
            return false
        }
        bytes.append(contentsOf: line)
        lineCount += 1
        return true
    }

    /// Counts lines that were taken but could not be written.
    mutating func recordLost(lineCount lost: Int) {
        droppedSinceTaken += lost
        droppedTotal += lost
    }

    /// Everything queued, and the count of lines dropped since the last take.
    mutating func take() -> Batch {
        defer {
            bytes = []
            lineCount = 0
            droppedSinceTaken = 0
        }
        return Batch(bytes: bytes, lineCount: lineCount, droppedLineCount: droppedSinceTaken)
    }
}
