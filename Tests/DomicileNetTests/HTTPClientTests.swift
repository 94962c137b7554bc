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
}
