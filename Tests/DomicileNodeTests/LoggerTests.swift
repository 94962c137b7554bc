@testable import DomicileNode
import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// Logging never makes a caller wait for its pipe: a reader that falls
/// behind costs lines (counted, reported, in order), never a stalled event
/// loop; and shutdown delivers what is queued.
final class LoggerTests: XCTestCase {
    // MARK: The queue (pure)

    func test_logQueue_dropsBeyondLinesMax_andReportsTheDropsWithTheNextBatch() {
        var queue = LogQueue(linesMax: 2, bytesMax: 1_000)
        XCTAssertTrue(queue.append(Array("a\n".utf8)))
        XCTAssertTrue(queue.append(Array("b\n".utf8)))
        XCTAssertFalse(queue.append(Array("c\n".utf8)))
        XCTAssertFalse(queue.append(Array("d\n".utf8)))
        let batch = queue.take()
        XCTAssertEqual(String(decoding: batch.bytes, as: UTF8.self), "a\nb\n")
        XCTAssertEqual(batch.lineCount, 2)
        XCTAssertEqual(batch.droppedLineCount, 2)
        XCTAssertTrue(queue.isEmpty)
        XCTAssertTrue(queue.append(Array("e\n".utf8)), "taking the batch makes room")
        XCTAssertEqual(queue.take().droppedLineCount, 0, "drops are reported once")
        XCTAssertEqual(queue.droppedTotal, 2)
    }

    func test_logQueue_dropsALineThatWouldPassBytesMax_whole() {
        var queue = LogQueue(linesMax: 100, bytesMax: 10)
        XCTAssertTrue(queue.append(Array("12345678\n".utf8)))
        XCTAssertFalse(queue.append(Array("ab\n".utf8)), "a line is queued whole or not at all")
        XCTAssertTrue(queue.append(Array("\n".utf8)))
        XCTAssertEqual(String(decoding: queue.take().bytes, as: UTF8.self), "12345678\n\n")
    }

    func test_logQueue_linesLostToAFailedWrite_countAsDropped() {
        var queue = LogQueue(linesMax: 10, bytesMax: 100)
        queue.append(Array("a\n".utf8))
        let batch = queue.take()
        queue.recordLost(lineCount: batch.lineCount)
        XCTAssertFalse(queue.isEmpty, "the loss is still to be reported")
        XCTAssertEqual(queue.take().droppedLineCount, 1)
        XCTAssertEqual(queue.droppedTotal, 1)
    }

    // MARK: The logger on a real pipe

    func test_logger_burstOnAFullPipe_returns_dropsAreCountedAndReportedInOrder() throws {
        let pipe = try LogPipe()
        let fillerLines = pipe.fill()
        var settings = Logger.Settings()
        settings.queuedLinesMax = 100
        settings.flushTimeoutMilliseconds = 60_000
        let logger = Logger(clock: SystemClock(), descriptor: pipe.writeEnd, settings: settings)
        let count = 1_000
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for sequence in 0..<count { logger.info("burst", ["seq": .int(Int64(sequence))]) }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "log calls waited for a pipe nobody reads")
        let dropped = logger.droppedLineCount
        XCTAssertGreaterThan(dropped, 0, "the queue holds 100 lines and the pipe takes none")

        let objects = try pipe.linesAfterFlushing(logger).dropFirst(fillerLines)
        XCTAssertEqual(objects.filter { $0["event"] as? String == "filler" }.count, 0)
        let burst = objects.filter { $0["event"] as? String == "burst" }
        XCTAssertEqual(burst.count, count - dropped)
        XCTAssertEqual(logger.droppedLineCount, dropped, "nothing dropped once the pipe is read")
        // Each report stands where its lines are missing, and counts them.
        var next = 0
        for object in objects {
            switch object["event"] as? String {
            case "burst":
                XCTAssertEqual(object["seq"] as? Int, next, "lines in order, none repeated, gaps reported")
                next = (object["seq"] as? Int ?? next) + 1
            case Logger.droppedEvent:
                XCTAssertEqual(object["level"] as? String, "warning")
                next += object["count"] as? Int ?? 0
            default:
                XCTFail("unexpected line \(object)")
            }
        }
        XCTAssertEqual(next, count, "every line is either read or reported dropped")
    }

    func test_logger_flush_deliversEverythingQueuedWhileThePipeWasFull() throws {
        let pipe = try LogPipe()
        let fillerLines = pipe.fill()
        var settings = Logger.Settings()
        settings.flushTimeoutMilliseconds = 60_000
        let logger = Logger(clock: SystemClock(), descriptor: pipe.writeEnd, settings: settings)
        for sequence in 0..<500 { logger.info("queued", ["seq": .int(Int64(sequence))]) }
        logger.info("stopped")

        let events = try pipe.linesAfterFlushing(logger).dropFirst(fillerLines)
        XCTAssertEqual(events.map { $0["seq"] as? Int }, (0..<500).map { $0 } + [nil])
        XCTAssertEqual(events.last?["event"] as? String, "stopped", "the last line is not lost")
        XCTAssertEqual(logger.droppedLineCount, 0)
    }

    func test_logger_flush_givesUpWhenNobodyReads() throws {
        let pipe = try LogPipe()
        pipe.fill()
        var settings = Logger.Settings()
        settings.flushTimeoutMilliseconds = 50
        let logger = Logger(clock: SystemClock(), descriptor: pipe.writeEnd, settings: settings)
        logger.info("waiting")
        XCTAssertFalse(logger.flush(), "flush is bounded: the pipe never took the line")

        // Read, so the writer thread is not left blocked on the pipe.
        XCTAssertEqual(try pipe.linesAfterFlushing(logger).last?["event"] as? String, "waiting")
    }

    func test_logger_lines_areJSONCarryingTheirFields() throws {
        let pipe = try LogPipe()
        let logger = Logger(clock: SystemClock(), descriptor: pipe.writeEnd)
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} é"
        logger.warning("odd", ["text": .string(awkward), "n": 42, "ratio": .double(0.5), "flag": .bool(true),
                               "nan": .double(.nan)])
        let objects = try pipe.linesAfterFlushing(logger)
        XCTAssertEqual(objects.count, 1)
        let object = try XCTUnwrap(objects.first)
        XCTAssertEqual(object["event"] as? String, "odd")
        XCTAssertEqual(object["level"] as? String, "warning")
        XCTAssertEqual(object["text"] as? String, awkward)
        XCTAssertEqual(object["n"] as? Int, 42)
        XCTAssertEqual(object["ratio"] as? Double, 0.5)
        XCTAssertEqual(object["flag"] as? Bool, true)
        XCTAssertTrue(object["nan"] is NSNull)
        XCTAssertNoThrow(try Timestamp(rfc3339: XCTUnwrap(object["at"] as? String)))
    }

    // MARK: A node whose standard output nobody reads

    func test_node_keepsAnswering_whileItsLogPipeIsFull_andCountsTheDroppedLinesInMetrics() async throws {
        let federation = try FederationFixture(regions: ["eu"])
        var configuration = try NodeConfiguration.load(path: federation.configPath("eu-1"))
        configuration.gossip.address = nil
        configuration.accessLog = true
        let pipe = try LogPipe()
        pipe.fill()
        var settings = Logger.Settings()
        settings.queuedLinesMax = 10
        settings.flushTimeoutMilliseconds = 50
        let logger = Logger(clock: SystemClock(), descriptor: pipe.writeEnd, settings: settings)
        let node = try await Node.start(configuration, logger: logger)
        let client = federation.client
        for _ in 0..<50 {
            let response = try await client.send("GET", "/healthz", to: node.httpAddress, timeoutMilliseconds: 30_000)
            XCTAssertEqual(response.status, 200)
        }
        let metrics = try await client.send("GET", "/metrics", to: node.httpAddress, timeoutMilliseconds: 30_000)
        let counter = String(decoding: metrics.body, as: UTF8.self).split(separator: "\n")
            .first { $0.hasPrefix("domicile_log_lines_dropped_total ") }
        let dropped = Int(try XCTUnwrap(counter, "no domicile_log_lines_dropped_total in /metrics").split(separator: " ")[1])
        XCTAssertGreaterThan(try XCTUnwrap(dropped), 0, "50 access-log lines do not fit a queue of 10 and a full pipe")
        await node.shutdown(graceMilliseconds: 1_000)

        let objects = try pipe.linesAfterFlushing(logger)
        XCTAssertEqual(objects.first { $0["event"] as? String != "filler" }?["event"] as? String, "listening")
        let reported = objects.filter { $0["event"] as? String == Logger.droppedEvent }.map { $0["count"] as? Int ?? 0 }
        XCTAssertEqual(reported.reduce(0, +), logger.droppedLineCount, "every dropped line is reported")
        XCTAssertEqual(objects.last?["event"] as? String, Logger.droppedEvent,
                       "the shutdown lines found the queue full: their loss is the last line")
    }
}

/// A pipe whose ends the test closes itself.
private final class LogPipe {
    let readEnd: Int32
    let writeEnd: Int32
    private var writeOpen = true

    init() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SystemError(function: "pipe", errno: errno) }
        (readEnd, writeEnd) = (ends[0], ends[1])
        // A child spawned meanwhile must not hold the write end open (no EOF).
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    }

    /// Writes filler lines until the pipe holds no more; returns how many.
    /// Chunks of PIPE_BUF bytes are written whole or not at all.
    @discardableResult
    func fill() -> Int {
        let line = #"{"event":"filler"}"#.padding(toLength: 31, withPad: " ", startingAt: 0) + "\n"
        precondition(4_096 % line.utf8.count == 0)
        let chunk = Array(String(repeating: line, count: 4_096 / line.utf8.count).utf8)
        let flags = fcntl(writeEnd, F_GETFL)
        _ = fcntl(writeEnd, F_SETFL, flags | O_NONBLOCK)
        var lines = 0
        while chunk.withUnsafeBytes({ write(writeEnd, $0.baseAddress, $0.count) }) == chunk.count {
            lines += 4_096 / line.utf8.count
        }
        _ = fcntl(writeEnd, F_SETFL, flags)
        return lines
    }

    /// Reads the pipe while `logger` flushes, then to its end: every line
    /// as a JSON object.
    func linesAfterFlushing(_ logger: Logger) throws -> [[String: Any]] {
        let reader = PipeReader(descriptor: readEnd)
        while !logger.flush() {}
        closeWriteEnd()
        return try reader.jsonLines()
    }

    private func closeWriteEnd() {
        if writeOpen { close(writeEnd) }
        writeOpen = false
    }

    deinit {
        closeWriteEnd()
        close(readEnd)
    }
}

/// Reads a descriptor to its end on a thread of its own.
private final class PipeReader: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var bytes: [UInt8] = []  // written by the thread before `done`, read after it

    init(descriptor: Int32) {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count > 0 { bytes += buffer[..<count] } else if count < 0 && errno == EINTR { continue } else { break }
            }
            done.signal()
        }
    }

    /// Every line read until the end of the pipe, each parsed as a JSON object.
    func jsonLines() throws -> [[String: Any]] {
        guard done.wait(timeout: .now() + 60) == .success else { throw SystemError(function: "read", errno: ETIMEDOUT) }
        XCTAssertEqual(bytes.last, UInt8(ascii: "\n"), "the last line is whole")
        return try bytes.split(separator: UInt8(ascii: "\n")).map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line))
            return try XCTUnwrap(object as? [String: Any], "not a JSON object: \(String(decoding: line, as: UTF8.self))")
        }
    }
}
