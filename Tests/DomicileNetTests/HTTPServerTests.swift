import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

final class HTTPServerTests: XCTestCase {
    func test_server_answers50ConnectionsTimes200KeepAliveRequests() async throws {
        let fixture = try TestServer()
        let connections = try (0..<50).map { _ in try RawConnection(port: fixture.port) }
        let failures = Locked(0)
        let group = DispatchGroup()
        for (index, connection) in connections.enumerated() {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                for request in 0..<200 {
                    let ok: Bool
                    if request % 2 == 0 {
                        connection.send("GET /items/\(index)-\(request) HTTP/1.1\r\nHost: t\r\n\r\n")
                        ok = (try? connection.readResponse())?.text == "item \(index)-\(request)"
                    } else {
                        let body = #"{"connection":\#(index),"request":\#(request)}"#
                        connection.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                        let response = try? connection.readResponse()
                        ok = response?.status == 200 && response?.text == body
                    }
                    if !ok { failures.withLock { $0 += 1 } }
                }
            }
            thread.start()
        }
        group.wait()
        XCTAssertEqual(failures.value, 0)
        XCTAssertEqual(fixture.server.connectionCount, 50, "keep-alive: every connection stayed open")
        await fixture.stop()
    }

    func test_server_answersPipelinedRequestsInOrder() async throws {
        let fixture = try TestServer()
        let connection = try RawConnection(port: fixture.port)
        var batch = ""
        for index in 0..<20 {
            if index % 3 == 0 {
                batch += "GET /slow?ms=\(20 - index) HTTP/1.1\r\nHost: t\r\n\r\n"
            } else {
                batch += "GET /items/\(index) HTTP/1.1\r\nHost: t\r\n\r\n"
            }
        }
        connection.send(batch)
        for index in 0..<20 {
            let response = try connection.readResponse()
            XCTAssertEqual(response.text, index % 3 == 0 ? "slept \(20 - index)" : "item \(index)", "response \(index) out of order")
        }
        await fixture.stop()
    }

    func test_server_answersEachMalformedClass_andKeepsServingOthers() async throws {
        var settings = HTTPServer.Settings.loopback
        settings.limits.requestLineBytesMax = 1_024
        settings.limits.headerBytesMax = 2_048
        settings.limits.headerCountMax = 20
        settings.limits.bodyBytesMax = 4_096
        let fixture = try TestServer(settings: settings)
        let healthy = try RawConnection(port: fixture.port)
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\nHost: a\n\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400),
            ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            ("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
            ("GET /\(String(repeating: "a", count: 2_000)) HTTP/1.1\r\nHost: a\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\nHost: a\r\nBig: \(String(repeating: "b", count: 3_000))\r\n\r\n", 431),
            ("GET / HTTP/1.1\r\nHost: a\r\n" + (0..<25).map { "H\($0): v\r\n" }.joined() + "\r\n", 431),
            ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413),
        ]
        for (index, (request, status)) in cases.enumerated() {
            let connection = try RawConnection(port: fixture.port)
            connection.send(request)
            let response = try connection.readResponse()
            XCTAssertEqual(response.status, status, "case \(index)")
            XCTAssertEqual(response.header("content-type"), "application/problem+json", "case \(index)")
            XCTAssertEqual(response.header("connection"), "close", "case \(index)")
            let problem = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            XCTAssertNotNil(problem?["code"] as? String, "case \(index)")
            XCTAssertEqual(problem?["status"] as? Int, status)
            XCTAssertTrue(connection.isClosedByPeer(), "case \(index): closed after the error")

            healthy.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertEqual(try healthy.readResponse().status, 200, "the healthy connection still works after case \(index)")
        }
        await fixture.stop()
    }

    func test_server_cutsOffASlowClientAtTheHeaderTimeout_whileServingOthers() async throws {
        var settings = HTTPServer.Settings.loopback
        settings.headerReadTimeoutMilliseconds = 2_000
        let fixture = try TestServer(settings: settings)
        let slow = try RawConnection(port: fixture.port)
        let start = Date()
        let slowResult = Locked<(status: Int?, closedAfter: Double)>((nil, 0))
        let slowDone = DispatchSemaphore(value: 0)
        Thread {
            let request = Array("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Padding: \(String(repeating: "p", count: 40))\r\n\r\n".utf8)
            for byte in request {
                guard slow.send([byte]) else { break }
                // One byte per second would be slowloris; checking the cut-off needs only a few.
                Thread.sleep(forTimeInterval: 1.0)
                if Date().timeIntervalSince(start) > 4 { break }
            }
            slowDone.signal()
        }.start()
        Thread {
            let response = try? slow.readResponse()
            let closed = slow.isClosedByPeer(timeoutSeconds: 3)
            slowResult.withLock { $0 = (response?.status, closed ? Date().timeIntervalSince(start) : -1) }
        }.start()

        // Meanwhile a normal client is served promptly.
        let normal = try RawConnection(port: fixture.port)
        var slowest = 0.0
        for index in 0..<40 {
            let sent = Date()
            normal.send("GET /items/\(index) HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertEqual(try normal.readResponse().text, "item \(index)")
            slowest = max(slowest, Date().timeIntervalSince(sent))
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTAssertLessThan(slowest, 0.5, "other clients are not slowed down")
        slowDone.wait()
        try await Task.sleep(nanoseconds: 500_000_000)
        let result = slowResult.value
        XCTAssertEqual(result.status, 408)
        XCTAssertGreaterThan(result.closedAfter, 1.9, "not before the header timeout")
        XCTAssertLessThan(result.closedAfter, 3.5, "cut off at the header timeout, not after the whole request trickled in")
        await fixture.stop()
    }

    func test_server_refusesConnectionsOverTheLimit_withoutDisturbingOthers() async throws {
        var settings = HTTPServer.Settings.loopback
        settings.connectionsMax = 4
        let fixture = try TestServer(settings: settings)
        let admitted = try (0..<4).map { _ in try RawConnection(port: fixture.port) }
        for (index, connection) in admitted.enumerated() {
            connection.send("GET /items/\(index) HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertEqual(try connection.readResponse().status, 200)
        }
        let refused = try RawConnection(port: fixture.port)
        let refusal = try refused.readResponse()
        XCTAssertEqual(refusal.status, 503)
        XCTAssertTrue(refusal.text.contains("too_many_connections"))
        XCTAssertTrue(refused.isClosedByPeer())
        for (index, connection) in admitted.enumerated() {
            connection.send("GET /items/again-\(index) HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertEqual(try connection.readResponse().text, "item again-\(index)", "admitted connections undisturbed")
        }
        admitted[0].send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        _ = try admitted[0].readResponse()
        XCTAssertTrue(admitted[0].isClosedByPeer())
        try await Task.sleep(nanoseconds: 100_000_000)
        let later = try RawConnection(port: fixture.port)
        later.send("GET /items/later HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try later.readResponse().text, "item later", "a freed slot is reused")
        await fixture.stop()
    }

    func test_gracefulShutdown_finishesTheRequestInFlight_andStopsAccepting() async throws {
        let fixture = try TestServer()
        let idle = try RawConnection(port: fixture.port)
        let busy = try RawConnection(port: fixture.port)
        busy.send("GET /slow?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n")
        try await Task.sleep(nanoseconds: 150_000_000)
        let shutdown = Task { await fixture.server.shutdown(graceMilliseconds: 5_000) }
        let response = try busy.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "slept 700")
        XCTAssertEqual(response.header("connection"), "close")
        XCTAssertTrue(idle.isClosedByPeer(), "idle connections are closed at once")
        let clean = await shutdown.value
        XCTAssertTrue(clean, "nothing had to be cut off")
        XCTAssertThrowsError(try RawConnection(port: fixture.port), "no longer accepting")
    }

    func test_server_sends100Continue_thenReadsTheBody() async throws {
        let fixture = try TestServer()
        let connection = try RawConnection(port: fixture.port)
        connection.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        let interim = try connection.readResponse()
        XCTAssertEqual(interim.status, 100)
        connection.send("hello")
        let final = try connection.readResponse()
        XCTAssertEqual(final.status, 200)
        XCTAssertEqual(final.text, "hello")
        await fixture.stop()
    }

    func test_server_readsChunkedBodies() async throws {
        let fixture = try TestServer()
        let connection = try RawConnection(port: fixture.port)
        connection.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n")
        XCTAssertEqual(try connection.readResponse().text, "Wikipedia")
        await fixture.stop()
    }

    func test_server_answers404And405AsProblems_andHandlesRequestIDs() async throws {
        let fixture = try TestServer()
        let connection = try RawConnection(port: fixture.port)
        connection.send("GET /nowhere HTTP/1.1\r\nHost: t\r\nX-Request-Id: trace-123.abc\r\n\r\n")
        let notFound = try connection.readResponse()
        XCTAssertEqual(notFound.status, 404)
        XCTAssertEqual(notFound.header("x-request-id"), "trace-123.abc", "a sane request id is echoed")
        XCTAssertTrue(notFound.text.contains(#""code":"not_found""#))

        connection.send("DELETE /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: bad id with spaces\r\n\r\n")
        let notAllowed = try connection.readResponse()
        XCTAssertEqual(notAllowed.status, 405)
        XCTAssertEqual(notAllowed.header("allow"), "GET, HEAD")
        XCTAssertNotEqual(notAllowed.header("x-request-id"), "bad id with spaces")
        XCTAssertFalse(notAllowed.header("x-request-id")?.isEmpty ?? true, "a request id is generated")

        connection.send("GET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
        let failure = try connection.readResponse()
        XCTAssertEqual(failure.status, 500)
        XCTAssertTrue(failure.text.contains("internal_error"))
        await fixture.stop()
    }

    func test_jsonDecoding_answersClear400s() async throws {
        let fixture = try TestServer()
        let connection = try RawConnection(port: fixture.port)
        func post(_ body: String, contentType: String = "application/json") throws -> RawConnection.Response {
            connection.send("POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            return try connection.readResponse()
        }
        XCTAssertEqual(try post(#"{"name":"a","count":2}"#).text, #"{"count":2,"name":"a"}"#)
        let missing = try post(#"{"name":"a"}"#)
        XCTAssertEqual(missing.status, 400)
        XCTAssertTrue(missing.text.contains("count is required"), missing.text)
        let wrongType = try post(#"{"name":"secret-value-123","count":"many"}"#)
        XCTAssertTrue(wrongType.text.contains("count must be an integer"), wrongType.text)
        XCTAssertFalse(wrongType.text.contains("many"), "the rejected value is not echoed")
        XCTAssertTrue(try post("{not json").text.contains("not valid JSON"))
        XCTAssertEqual(try post(#"{"name":"a","count":2}"#, contentType: "text/plain").status, 415)
        await fixture.stop()
    }

    func test_idleKeepAliveConnections_areClosedAfterTheIdleTimeout() async throws {
        var settings = HTTPServer.Settings.loopback
        settings.idleTimeoutMilliseconds = 300
        let fixture = try TestServer(settings: settings)
        let connection = try RawConnection(port: fixture.port)
        connection.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try connection.readResponse().status, 200)
        XCTAssertTrue(connection.isClosedByPeer(timeoutSeconds: 3))
        await fixture.stop()
    }

    func test_observer_seesRoutePatternsNotValues() async throws {
        let fixture = try TestServer()
        let connection = try RawConnection(port: fixture.port)
        connection.send("GET /items/secret-identifier?q=alice@example.com HTTP/1.1\r\nHost: t\r\n\r\n")
        _ = try connection.readResponse()
        try await Task.sleep(nanoseconds: 50_000_000)
        let exchange = try XCTUnwrap(fixture.exchanges.all.last)
        XCTAssertEqual(exchange.route, "/items/{id}")
        XCTAssertEqual(exchange.status, 200)
        XCTAssertFalse("\(exchange)".contains("secret-identifier"))
        XCTAssertFalse("\(exchange)".contains("alice"))
        await fixture.stop()
    }
}
