import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

final class FramedListenerTests: XCTestCase {
    private func echoListener(connectionsMax: Int = 256, frameBytesMax: Int = 1_024 * 1_024,
                              timeoutMilliseconds: Int64 = 20_000) throws -> FramedListener {
        let listener = try FramedListener(bind: try SocketAddress(parsing: "127.0.0.1:0"), connectionsMax: connectionsMax,
                                          frameBytesMax: frameBytesMax, timeoutMilliseconds: timeoutMilliseconds, name: "test-framed")
        listener.start { frame in Array(frame.reversed()) }
        return listener
    }

    /// `u32 length (big-endian) · bytes`, as docs/FORMATS.md says.
    private func frame(_ bytes: [UInt8]) -> [UInt8] {
        [UInt8(bytes.count >> 24 & 0xFF), UInt8(bytes.count >> 16 & 0xFF), UInt8(bytes.count >> 8 & 0xFF), UInt8(bytes.count & 0xFF)] + bytes
    }

    func test_listener_servesManyConcurrentConnections_onItsLoopAlone() throws {
        let listener = try echoListener()
        defer { listener.close() }
        let sampler = ThreadSampler()
        let baseline = ThreadSampler.currentCount
        let payloads = (0..<200).map { index in Array("push-pull \(index)".utf8) }
        // Every connection sends half of its frame, so all are open and in flight at once.
        let connections = try payloads.map { payload -> RawConnection in
            let connection = try RawConnection(port: listener.localAddress.port)
            XCTAssertTrue(connection.send(Array(frame(payload).prefix(8))))
            return connection
        }
        try waitUntil { listener.openConnections.served == payloads.count }
        for (connection, payload) in zip(connections, payloads) {
            XCTAssertTrue(connection.send(Array(frame(payload).dropFirst(8))))
        }
        for (connection, payload) in zip(connections, payloads) {
            XCTAssertEqual(try connection.read(exactly: 4), frame(payload).prefix(4).map { $0 }, "a big-endian u32 length")
            XCTAssertEqual(try connection.read(exactly: payload.count), payload.reversed())
            XCTAssertTrue(connection.isClosedByPeer(), "one exchange per connection")
        }
        let highest = sampler.stop()
        XCTAssertLessThanOrEqual(highest, baseline + 2, "no thread per connection (baseline \(baseline), highest \(highest))")
        try waitUntil { listener.openConnections.served == 0 }
    }

    func test_listener_closesConnectionsBeyondItsBound_andFramesTooLarge() throws {
        let listener = try echoListener(connectionsMax: 2, frameBytesMax: 16)
        defer { listener.close() }
        let held = try (0..<2).map { _ in try RawConnection(port: listener.localAddress.port) }
        try waitUntil { listener.openConnections.served == 2 }
        let extra = try RawConnection(port: listener.localAddress.port)
        XCTAssertTrue(extra.isClosedByPeer(), "over the bound: closed at once")
        XCTAssertTrue(held[0].send(frame(Array(repeating: 7, count: 17))))
        XCTAssertTrue(held[0].isClosedByPeer(), "a frame over the limit is refused")
        XCTAssertTrue(held[1].send(frame([1, 2, 3])))
        XCTAssertEqual(try held[1].read(exactly: 7), frame([3, 2, 1]))
    }

    func test_exchange_manyConcurrentCalls_onOneLoop() async throws {
        let server = try echoListener()
        let caller = try echoListener()
        defer {
            server.close()
            caller.close()
        }
        let sampler = ThreadSampler()
        let baseline = ThreadSampler.currentCount
        let replies = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let request = Array("state \(index)".utf8)
                    return try await caller.exchange(request, with: server.localAddress) == request.reversed()
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        let highest = sampler.stop()
        XCTAssertEqual(replies, Array(repeating: true, count: 200))
        XCTAssertLessThanOrEqual(highest, baseline + 8, "no thread per call (baseline \(baseline), highest \(highest))")
        XCTAssertEqual(caller.openConnections.called, 0)
    }

    func test_exchange_timesOutOnASilentPeer_andIsBoundedInNumber() async throws {
        let silent = try SilentPeer()
        let caller = try FramedListener(bind: try SocketAddress(parsing: "127.0.0.1:0"), connectionsMax: 1, frameBytesMax: 1_024,
                                        timeoutMilliseconds: 500, name: "test-framed")
        defer { caller.close() }
        let first = Task { try await caller.exchange([1], with: silent.address) }
        let connection = try XCTUnwrap(silent.acceptNext())
        await XCTAssertThrowsErrorAsync(try await caller.exchange([2], with: silent.address)) { error in
            XCTAssertEqual(error as? FramedConnection.Failure, .busy)
        }
        await XCTAssertThrowsErrorAsync(try await first.value) { error in
            XCTAssertEqual(error as? FramedConnection.Failure, .timeout)
        }
        XCTAssertTrue(silent.readsEndOfStream(connection), "the timed-out connection was closed")
        XCTAssertEqual(caller.openConnections.called, 0)
    }

    func test_exchange_failsWithClosed_afterTheListenerCloses() async throws {
        let caller = try echoListener()
        let server = try echoListener()
        defer { server.close() }
        caller.close()
        await XCTAssertThrowsErrorAsync(try await caller.exchange([1], with: server.localAddress)) { error in
            XCTAssertEqual(error as? FramedConnection.Failure, .closed)
        }
    }

    private func waitUntil(_ condition: () -> Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let deadline = Date().addingTimeInterval(10)
        while !condition() {
            guard Date() < deadline else { return XCTFail("condition not met in 10 s", file: file, line: line) }
            usleep(5_000)
        }
    }
}
