import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// A request's body is read only once its head is admitted: the route
/// exists, its admission (authentication) passes, the declared length fits
/// the route's limit and the server's in-flight body budget.
final class BodyAdmissionTests: XCTestCase {
    /// `/small` reads at most 100 bytes; `/guarded` wants `Authorization: Bearer ok`.
    private func server(_ configure: (inout HTTPServer.Settings) -> Void = { _ in }) throws -> TestServer {
        var settings = HTTPServer.Settings.loopback
        settings.limits.bodyBytesMax = 2 * 1_024 * 1_024
        configure(&settings)
        return try TestServer(settings: settings, extraRoutes: { router in
            router.add("POST", "/small", bodyBytesMax: 100, .inline { request in .text("small \(request.body.count)") })
            router.add("POST", "/guarded", admission: { request throws(HTTPError) in
                guard request.headers["authorization"] == "Bearer ok" else {
                    throw HTTPError(status: 401, code: "unauthorized", detail: "send a token")
                }
            }, .inline { request in .text("guarded \(request.body.count)") })
        })
    }

    private func problemCode(_ response: RawConnection.Response) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["code"] as? String
    }

    func test_aDeclaredBodyOverTheRouteLimit_is413FromTheHeadersAlone() async throws {
        let fixture = try server()
        let connection = try RawConnection(port: fixture.port)
        // Only the head is sent: the answer cannot wait for the body.
        connection.send("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n")
        let response = try connection.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(problemCode(response), "body_too_large")
        XCTAssertTrue(response.text.contains("100 bytes"), response.text)
        XCTAssertTrue(connection.isClosedByPeer(), "the unread body is not waited for")

        // The same size is fine on a route with the server's limit, and 100 bytes on /small.
        let other = try RawConnection(port: fixture.port)
        other.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n" + String(repeating: "x", count: 101))
        XCTAssertEqual(try other.readResponse().status, 200)
        other.send("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + String(repeating: "x", count: 100))
        XCTAssertEqual(try other.readResponse().text, "small 100")
        XCTAssertEqual(fixture.server.bodyBytesReserved, 0)
        await fixture.stop()
    }

    /// A client that sends its whole (refused) body before reading gets the
    /// answer, not a reset: the server stops writing, drains what arrives for
    /// a moment (lingering close), then closes.
    func test_aClientThatSendsTheRefusedBodyAnyway_stillReadsTheAnswer() async throws {
        let fixture = try server()
        for (head, status) in [("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413),
                               ("POST /guarded HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 401)] {
            let connection = try RawConnection(port: fixture.port)
            XCTAssertTrue(connection.send(head) && connection.send([UInt8](repeating: 0x61, count: 2_000_000)), "the body was accepted by the socket")
            XCTAssertEqual(try connection.readResponse().status, status)
            XCTAssertTrue(connection.isClosedByPeer(), "then closed")
        }
        XCTAssertEqual(fixture.server.bodyBytesReserved, 0)
        await fixture.stop()
    }

    func test_aChunkedBodyOverTheRouteLimit_is413AsItsRunningTotalPassesIt() async throws {
        let fixture = try server()
        let connection = try RawConnection(port: fixture.port)
        let chunk = String(repeating: "y", count: 60)
        connection.send("POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n\(chunk)\r\n3c\r\n\(chunk)\r\n")
        let response = try connection.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(problemCode(response), "body_too_large")
        await fixture.stop()
    }

    func test_aRequestRefusedByItsRoute_isAnsweredBeforeItsBodyIsRead() async throws {
        let fixture = try server()
        // A large declared body without the token: 401 at once, the body never read.
        let refused = try RawConnection(port: fixture.port)
        refused.send("POST /guarded HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" + String(repeating: "z", count: 1_000))
        let response = try refused.readResponse()
        XCTAssertEqual(response.status, 401)
        XCTAssertEqual(problemCode(response), "unauthorized")
        XCTAssertTrue(refused.isClosedByPeer(), "the connection is closed rather than the body read")
        XCTAssertEqual(fixture.server.bodyBytesReserved, 0, "a refused body reserves nothing")

        // A small body is read and dropped: the connection stays usable.
        let connection = try RawConnection(port: fixture.port)
        connection.send("POST /guarded HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        XCTAssertEqual(try connection.readResponse().status, 401)
        connection.send("POST /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        XCTAssertEqual(try connection.readResponse().status, 404)
        connection.send("POST /guarded HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ok\r\nContent-Length: 5\r\n\r\nhello")
        XCTAssertEqual(try connection.readResponse().text, "guarded 5")

        // Expect: 100-continue without the token: no 100, the refusal straight away.
        let expecting = try RawConnection(port: fixture.port)
        expecting.send("POST /guarded HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        XCTAssertEqual(try expecting.readResponse().status, 401)
        await fixture.stop()
    }

    func test_bodiesOverTheInFlightBudget_get503OverloadedWithRetryAfter() async throws {
        let fixture = try server { settings in
            settings.limits.bodyBytesMax = 8_000
            settings.bodyBytesInFlightMax = 10_000
        }
        // A holds 8,000 bytes of the budget: its head is admitted (100 Continue), its body not sent yet.
        let holder = try RawConnection(port: fixture.port)
        holder.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 8000\r\n\r\n")
        XCTAssertEqual(try holder.readResponse().status, 100)
        XCTAssertEqual(fixture.server.bodyBytesReserved, 8_000)

        for request in ["POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
                        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nbb8\r\n" + String(repeating: "c", count: 3_000)] {
            let over = try RawConnection(port: fixture.port)
            over.send(request)
            let response = try over.readResponse()
            XCTAssertEqual(response.status, 503)
            XCTAssertEqual(problemCode(response), "overloaded")
            XCTAssertEqual(response.header("retry-after"), "1")
            XCTAssertEqual(response.header("content-type"), "application/problem+json")
            XCTAssertTrue(over.isClosedByPeer())
        }

        holder.send(String(repeating: "h", count: 8_000))
        XCTAssertEqual(try holder.readResponse().body.count, 8_000)
        XCTAssertEqual(fixture.server.bodyBytesReserved, 0, "released once answered")
        let after = try RawConnection(port: fixture.port)
        after.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "a", count: 5_000))
        XCTAssertEqual(try after.readResponse().status, 200, "the budget is free again")
        await fixture.stop()
    }

    /// A client that sends its body and resets its connection while the
    /// handler still holds that body frees nothing: the budget is released
    /// when the handler returns, not when the connection closes.
    func test_aBodyHeldByItsHandler_keepsItsBudget_afterTheClientResets() async throws {
        let gate = Gate()
        var settings = HTTPServer.Settings.loopback
        settings.limits.bodyBytesMax = 8_000
        settings.bodyBytesInFlightMax = 10_000
        let held = try TestServer(settings: settings, extraRoutes: { router in
            router.post("/held") { request in
                await gate.pass()
                return .text("held \(request.body.count)")
            }
        })

        for index in 1...2 {
            let client = try RawConnection(port: held.port)
            client.send("POST /held HTTP/1.1\r\nHost: t\r\nContent-Length: 4000\r\n\r\n" + String(repeating: "b", count: 4_000))
            try await waitUntil("handler \(index) holds its body") { gate.arrivals == index }
            client.reset()
        }
        try await waitUntil("the server saw both resets") { held.server.connectionCount == 0 }
        XCTAssertEqual(held.server.bodyBytesReserved, 8_000, "the handlers still hold both bodies")
        let over = try RawConnection(port: held.port)
        over.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "o", count: 5_000))
        let refused = try over.readResponse()
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(problemCode(refused), "overloaded")

        gate.open()
        try await waitUntil("the handlers returned") { held.server.bodyBytesReserved == 0 }
        let after = try RawConnection(port: held.port)
        after.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "a", count: 5_000))
        XCTAssertEqual(try after.readResponse().status, 200, "the budget is free again")
        await held.stop()
    }

    func test_settings_refuseABudgetSmallerThanTheLargestBody() {
        var settings = HTTPServer.Settings()
        settings.limits.bodyBytesMax = 2_000
        settings.bodyBytesInFlightMax = 1_000
        XCTAssertThrowsError(try settings.validated())
    }

    func test_head_answersWithTheGetHeaders_andNoBody() async throws {
        let fixture = try server()
        let connection = try RawConnection(port: fixture.port)
        connection.send("GET /items/abc HTTP/1.1\r\nHost: t\r\n\r\n")
        let get = try connection.readResponse()
        // Pipelined: if HEAD sent a body, the GET's status line would not come next.
        connection.send("HEAD /items/abc HTTP/1.1\r\nHost: t\r\n\r\nGET /items/next HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try connection.readResponseHead()
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("content-length"), get.header("content-length"))
        XCTAssertEqual(head.header("content-type"), get.header("content-type"))
        XCTAssertEqual(try connection.readResponse().text, "item next")

        connection.send("HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        let notAllowed = try connection.readResponseHead()
        XCTAssertEqual(notAllowed.status, 405, "HEAD is served only by a GET route")
        XCTAssertEqual(notAllowed.header("allow"), "POST")
        await fixture.stop()
    }

    /// A GET that changes state (a one-time release) declares it: its HEAD
    /// is 405 and never runs the handler, whose answer nobody would read.
    func test_head_ofAGetThatChangesState_is405_andRunsNothing() async throws {
        let calls = Locked(0)
        let fixture = try TestServer(extraRoutes: { router in
            router.add("GET", "/once", servesHead: false, .inline { _ in
                calls.withLock { $0 += 1 }
                return .text("released")
            })
        })
        let connection = try RawConnection(port: fixture.port)
        connection.send("HEAD /once HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try connection.readResponseHead()
        XCTAssertEqual(head.status, 405)
        XCTAssertEqual(head.header("allow"), "GET")
        connection.send("GET /once HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try connection.readResponse().text, "released")
        XCTAssertEqual(calls.value, 1, "only the GET ran the handler")
        await fixture.stop()
    }

    func test_requestIDs_outsideTheRules_orRefusedByTheFilter_areReplaced() async throws {
        let fixture = try TestServer(requestIDFilter: { !$0.contains("0049") })
        let connection = try RawConnection(port: fixture.port)
        let sixtyFour = String(repeating: "a", count: 64)
        let cases: [(sent: String, kept: Bool)] = [
            ("trace-1.a:b_c", true), (sixtyFour, true), (sixtyFour + "a", false),
            ("004915177665544", false), ("bad id", false),
        ]
        for (sent, kept) in cases {
            connection.send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: \(sent)\r\n\r\n")
            let returned = try XCTUnwrap(try connection.readResponse().header("x-request-id"))
            XCTAssertEqual(returned == sent, kept, sent)
            XCTAssertFalse(returned.isEmpty)
        }
        try await Task.sleep(nanoseconds: 50_000_000)
        XCTAssertFalse(fixture.exchanges.all.contains { $0.requestID == "004915177665544" }, "the observer sees the replacement")
        await fixture.stop()
    }
}

/// Holds every task that passes until it is opened, counting arrivals.
final class Gate: @unchecked Sendable {
    private let lock = NSLock()
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var arrived = 0

    var arrivals: Int { lock.withLock { arrived } }

    func pass() async {
        await withCheckedContinuation { continuation in
            let passes = lock.withLock { () -> Bool in
                arrived += 1
                if !isOpen { waiting.append(continuation) }
                return isOpen
            }
            if passes { continuation.resume() }
        }
    }

    func open() {
        let released = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            isOpen = true
            defer { waiting = [] }
            return waiting
        }
        released.forEach { $0.resume() }
    }
}

/// Waits (at most 10 s) for a condition the server reaches on its own threads.
func waitUntil(_ what: String, file: StaticString = #filePath, line: UInt = #line,
               _ condition: () async -> Bool) async throws {
    for _ in 0..<1_000 {
        if await condition() { return }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
    XCTFail("timed out waiting until \(what)", file: file, line: line)
}
