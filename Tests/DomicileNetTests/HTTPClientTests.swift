import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

final class HTTPClientTests: XCTestCase {
    func test_client_poolsConnections_andStaysWithinItsBound() async throws {
        let fixture = try TestServer()
        var settings = HTTPClient.Settings()
        settings.connectionsPerPeerMax = 4
        settings.idleConnectionsPerPeerMax = 4
        let client = HTTPClient(settings: settings)
        for round in 0..<5 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<4 {
                    group.addTask {
                        let response = try await client.send("GET", "/items/\(round)-\(index)", to: fixture.address)
                        XCTAssertEqual(response.text, "item \(round)-\(index)")
                    }
                }
                try await group.waitForAll()
            }
        }
        let counts = client.connectionCounts(for: fixture.address)
        XCTAssertEqual(counts.busy, 0)
        XCTAssertLessThanOrEqual(counts.idle, 4)
        XCTAssertLessThanOrEqual(fixture.server.connectionCount, 4, "connections were reused, not reopened")

        let echoed = try await client.send("POST", "/json", to: fixture.address, json: ["name": "x"] as [String: String])
        XCTAssertEqual(echoed.status, 400, "a missing field is the server's 400, delivered as a response")
        await fixture.stop()
    }

    func test_client_failsFastWhenThePoolIsExhausted() async throws {
        let fixture = try TestServer()
        var settings = HTTPClient.Settings()
        settings.connectionsPerPeerMax = 2
        let client = HTTPClient(settings: settings)
        let slow = (0..<2).map { _ in Task { try await client.send("GET", "/slow?ms=500", to: fixture.address) } }
        try await Task.sleep(nanoseconds: 150_000_000)
        do {
            _ = try await client.send("GET", "/healthz", to: fixture.address)
            XCTFail("a third concurrent call should not queue")
        } catch HTTPClient.Failure.poolExhausted {
        }
        for task in slow {
            let status = try await task.value.status
            XCTAssertEqual(status, 200)
        }
        let after = try await client.send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(after.status, 200, "slots come back")
        await fixture.stop()
    }

    func test_client_timesOutOnAPeerThatStopsAnswering_andRecovers() async throws {
        // A peer that accepts connections and never answers.
        let silent = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), backlog: 16)
        defer { closeDescriptor(silent) }
        let silentAddress = try SocketAddress.localAddress(of: silent)
        var settings = HTTPClient.Settings()
        settings.requestTimeoutMilliseconds = 400
        let client = HTTPClient(settings: settings)
        let started = Date()
        do {
            _ = try await client.send("GET", "/healthz", to: silentAddress)
            XCTFail("expected a timeout")
        } catch HTTPClient.Failure.timedOut {
        }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(elapsed, 0.35)
        XCTAssertLessThan(elapsed, 2.0)
        XCTAssertEqual(client.connectionCounts(for: silentAddress).busy, 0, "the timed-out connection was released")
        XCTAssertEqual(client.connectionCounts(for: silentAddress).idle, 0, "and not kept for reuse")

        let fixture = try TestServer()
        let healthy = try await client.send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(healthy.status, 200, "other peers unaffected")
        await fixture.stop()
    }

    /// A line break in a header, the target or the method would let a caller
    /// smuggle a second request to the peer: such a call is refused before
    /// anything is sent, and the peer sees no request at all.
    func test_client_refusesRequestsWhoseHeadWouldSplit_andSendsNothing() async throws {
        let fixture = try TestServer()
        let client = HTTPClient()
        var smuggling = HTTPHeaders()
        smuggling.set("X-Note", "ok\r\nGET /admin HTTP/1.1")
        let attempts: [(String, String, HTTPHeaders)] = [("GET", "/healthz", smuggling), ("GET", "/healthz HTTP/1.1\r\nX: y", HTTPHeaders()),
                                                         ("GET", "/a b", HTTPHeaders()), ("GE T", "/healthz", HTTPHeaders())]
        for (method, target, headers) in attempts {
            do {
                _ = try await client.send(method, target, to: fixture.address, headers: headers)
                XCTFail("a request that splits was sent: \(method) \(target.debugDescription)")
            } catch HTTPClient.Failure.invalidRequest {
            }
        }
        let counts = client.connectionCounts(for: fixture.address)
        XCTAssertEqual(counts.busy + counts.idle, 0, "no connection was opened for a refused request")
        let fine = try await client.send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(fine.status, 200)
        await fixture.stop()
    }

    func test_client_reportsRefusedConnections() async throws {
        let probe = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), backlog: 1)
        let address = try SocketAddress.localAddress(of: probe)
        closeDescriptor(probe)
        let client = HTTPClient()
        do {
            _ = try await client.send("GET", "/", to: address)
            XCTFail("nothing listens there")
        } catch HTTPClient.Failure.connectFailed {
        }
    }

    func test_client_retriesAnIdempotentRequestOnAStaleKeepAliveConnection() async throws {
        var serverSettings = HTTPServer.Settings.loopback
        serverSettings.idleTimeoutMilliseconds = 200
        let fixture = try TestServer(settings: serverSettings)
        let client = HTTPClient()
        let first = try await client.send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(first.status, 200)
        XCTAssertEqual(client.connectionCounts(for: fixture.address).idle, 1)
        try await Task.sleep(nanoseconds: 500_000_000)  // the server closes the idle connection
        let second = try await client.send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(second.status, 200)
        await fixture.stop()
    }

    // MARK: On the event loop

    func test_client_completes1000ConcurrentCallsToASlowPeer_onAHandfulOfThreads() async throws {
        let fixture = try TestServer()
        let client = makeClient(connectionsPerPeerMax: 250, waitingRequestsPerPeerMax: 1_000)
        let sampler = ThreadSampler()
        let baseline = ThreadSampler.currentCount
        let answers = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<1_000 {
                group.addTask { try await client.send("GET", "/slow?ms=200", to: fixture.address).text }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        let highest = sampler.stop()
        XCTAssertEqual(answers.count, 1_000)
        XCTAssertEqual(Set(answers), ["slept 200"])
        XCTAssertLessThanOrEqual(highest, baseline + 8, "no thread per call (baseline \(baseline), highest \(highest))")
        XCTAssertEqual(client.connectionCounts(for: fixture.address).busy, 0)
        XCTAssertEqual(client.waitingCalls(for: fixture.address), 0)
        await fixture.stop()
    }

    func test_client_queuesCallsUpToItsBound_thenFailsFast() async throws {
        let silent = try SilentPeer()
        let client = makeClient(connectionsPerPeerMax: 1, waitingRequestsPerPeerMax: 1)
        let first = Task { try await client.send("GET", "/first", to: silent.address) }
        let connection = try XCTUnwrap(silent.acceptNext(), "the first call connects")
        let second = Task { try await client.send("GET", "/second", to: silent.address) }
        try await waitUntil { client.waitingCalls(for: silent.address) == 1 }
        do {
            _ = try await client.send("GET", "/third", to: silent.address)
            XCTFail("the queue holds one call")
        } catch HTTPClient.Failure.poolExhausted {
        }
        first.cancel()
        second.cancel()
        for call in [first, second] {
            await XCTAssertThrowsErrorAsync(try await call.value) { error in
                XCTAssertEqual(error as? HTTPClient.Failure, .cancelled(peer: silent.address.description))
            }
        }
        XCTAssertTrue(silent.readsEndOfStream(connection))
        XCTAssertEqual(client.connectionCounts(for: silent.address).busy, 0)
        XCTAssertEqual(client.waitingCalls(for: silent.address), 0)
    }

    func test_client_failsACallPastItsDeadline_andClosesItsConnection() async throws {
        let silent = try SilentPeer()
        let client = makeClient(connectionsPerPeerMax: 1)
        do {
            _ = try await client.send("GET", "/healthz", to: silent.address, timeoutMilliseconds: 300)
            XCTFail("expected a timeout")
        } catch HTTPClient.Failure.timedOut {
        }
        XCTAssertEqual(client.connectionCounts(for: silent.address).busy, 0, "the slot was released")
        XCTAssertEqual(client.connectionCounts(for: silent.address).idle, 0, "and its connection not kept")
        let connection = try XCTUnwrap(silent.acceptNext())
        XCTAssertTrue(silent.readsEndOfStream(connection), "the client closed the connection")

        do {
            _ = try await client.send("GET", "/healthz", to: silent.address, timeoutMilliseconds: 300)
            XCTFail("expected a timeout")
        } catch HTTPClient.Failure.timedOut {
            // Not poolExhausted: the one slot came back.
        }
        try await assertAHealthyPeerAnswers(client)
    }

    func test_client_cancellingTheCallingTask_cancelsTheCall_andClosesItsConnection() async throws {
        let silent = try SilentPeer()
        let client = makeClient(connectionsPerPeerMax: 1)
        let call = Task { try await client.send("GET", "/healthz", to: silent.address) }
        let connection = try XCTUnwrap(silent.acceptNext(), "the call connected")
        call.cancel()
        do {
            _ = try await call.value
            XCTFail("expected the call to be cancelled")
        } catch HTTPClient.Failure.cancelled {
        }
        XCTAssertEqual(client.connectionCounts(for: silent.address).busy, 0, "the slot was released")
        XCTAssertTrue(silent.readsEndOfStream(connection), "the client closed the connection")

        let cancelledEarly = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.send("GET", "/healthz", to: silent.address)
        }
        do {
            _ = try await cancelledEarly.value
            XCTFail("a call from a cancelled task is cancelled")
        } catch HTTPClient.Failure.cancelled {
        }
        XCTAssertEqual(client.connectionCounts(for: silent.address).busy, 0)
        try await assertAHealthyPeerAnswers(client)
    }

    /// A client with a long request deadline (tests that time out set their own).
    private func makeClient(connectionsPerPeerMax: Int, waitingRequestsPerPeerMax: Int = 0) -> HTTPClient {
        var settings = HTTPClient.Settings()
        settings.connectionsPerPeerMax = connectionsPerPeerMax
        settings.waitingRequestsPerPeerMax = waitingRequestsPerPeerMax
        settings.requestTimeoutMilliseconds = 60_000
        return HTTPClient(settings: settings)
    }

    private func assertAHealthyPeerAnswers(_ client: HTTPClient, file: StaticString = #filePath, line: UInt = #line) async throws {
        let fixture = try TestServer()
        let healthy = try await client.send("GET", "/healthz", to: fixture.address)
        XCTAssertEqual(healthy.status, 200, file: file, line: line)
        await fixture.stop()
    }

    /// Polls `condition` (for state another thread changes) for up to ten seconds.
    private func waitUntil(_ condition: () -> Bool, file: StaticString = #filePath, line: UInt = #line) async throws {
        let deadline = Date().addingTimeInterval(10)
        while !condition() {
            guard Date() < deadline else { return XCTFail("condition not met in 10 s", file: file, line: line) }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }
}
