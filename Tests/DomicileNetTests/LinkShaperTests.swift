import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// The WAN emulated in the transports (`LinkShaper`): what goes to a
/// shaped peer waits the link's one-way time, keeps its order, and only
/// datagrams are ever lost. Delays are checked as lower bounds only.
final class LinkShaperTests: XCTestCase {
    private let anyLoopbackPort = try! SocketAddress(parsing: "127.0.0.1:0")

    private func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    func test_datagrams_toAShapedPeer_arriveInOrder_eachAfterTheOneWayTime() throws {
        let receiver = try DatagramSocket(bind: anyLoopbackPort, receiveTimeoutMilliseconds: 2_000)
        let shaper = LinkShaper(links: [receiver.localAddress: LinkShape(roundTripMilliseconds: 60)])
        let sender = try DatagramSocket(bind: anyLoopbackPort, receiveTimeoutMilliseconds: 100, links: shaper)
        var sentAt: [UInt64] = []
        for index in 0..<40 {
            sentAt.append(nanoseconds())
            XCTAssertTrue(sender.send([UInt8(index)], to: receiver.localAddress))
            if index % 10 == 9 { Thread.sleep(forTimeInterval: 0.005) }
        }
        var arrivals: [(index: Int, at: UInt64)] = []
        while arrivals.count < 40, let (bytes, _) = receiver.receive() { arrivals.append((Int(bytes[0]), nanoseconds())) }
        XCTAssertEqual(arrivals.map(\.index), Array(0..<40), "every datagram, in the order sent")
        for arrival in arrivals {
            XCTAssertGreaterThanOrEqual(arrival.at - sentAt[arrival.index], 30_000_000, "datagram \(arrival.index) waited half the round trip")
        }
    }

    func test_datagrams_areLostAtTheLinksRate_andOtherPeersAreNotTouched() throws {
        let lossy = try DatagramSocket(bind: anyLoopbackPort, receiveTimeoutMilliseconds: 300)
        let unlisted = try DatagramSocket(bind: anyLoopbackPort, receiveTimeoutMilliseconds: 2_000)
        let shaper = LinkShaper(links: [lossy.localAddress: LinkShape(oneWayMicroseconds: 1_000, loss: 1)])
        let sender = try DatagramSocket(bind: anyLoopbackPort, receiveTimeoutMilliseconds: 100, links: shaper)
        XCTAssertNil(shaper.shape(to: unlisted.localAddress))
        for index in 0..<5 {
            XCTAssertTrue(sender.send([UInt8(index)], to: lossy.localAddress), "a lost datagram counts as sent, as UDP does")
            XCTAssertTrue(sender.send([UInt8(index)], to: unlisted.localAddress))
        }
        XCTAssertNil(lossy.receive(), "a link losing 100% delivers nothing")
        for index in 0..<5 { XCTAssertEqual(unlisted.receive()?.bytes, [UInt8(index)]) }

        let clear = LinkShaper(links: [lossy.localAddress: LinkShape(oneWayMicroseconds: 0, loss: 0)])
        XCTAssertNil(clear.shape(to: lossy.localAddress), "a link without delay or loss is not shaped")
    }

    /// HTTP is delayed both ways and never loses anything, even on a link that loses every datagram.
    func test_httpCalls_waitTheRoundTrip_keepTheirOrder_andAreNeverLost() async throws {
        let received = Locked<[String]>([])
        let server = try TestServer(extraRoutes: { router in
            router.post("/record") { request in
                received.withLock { $0.append(String(decoding: request.body, as: UTF8.self)) }
                return .text("ok")
            }
        })
        let shaper = LinkShaper(links: [server.address: LinkShape(oneWayMicroseconds: 25_000, loss: 1)])
        var settings = HTTPClient.Settings()
        settings.links = shaper
        let client = HTTPClient(settings: settings)
        for index in 0..<8 {
            let started = nanoseconds()
            let response = try await client.send("POST", "/record", to: server.address, body: Array("call \(index)".utf8))
            XCTAssertEqual(response.status, 200)
            XCTAssertGreaterThanOrEqual(nanoseconds() - started, 50_000_000, "the request and its response each waited 25 ms")
        }
        XCTAssertEqual(received.value, (0..<8).map { "call \($0)" }, "one connection's calls arrive in the order made")

        let concurrent = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<6 { group.addTask { try await client.send("POST", "/record", to: server.address, body: Array("x".utf8)).status } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        XCTAssertEqual(concurrent, Array(repeating: 200, count: 6), "no call is dropped")
        await server.stop()
    }

    func test_httpCall_whoseDeadlinePassesOnTheLink_timesOut() async throws {
        let server = try TestServer()
        var settings = HTTPClient.Settings()
        settings.links = LinkShaper(links: [server.address: LinkShape(oneWayMicroseconds: 300_000)])
        let client = HTTPClient(settings: settings)
        do {
            _ = try await client.send("GET", "/healthz", to: server.address, timeoutMilliseconds: 100)
            XCTFail("answered past its deadline")
        } catch let failure as HTTPClient.Failure {
            XCTAssertEqual(failure, .timedOut(peer: server.address.description))
        }
        await server.stop()
    }

    func test_pushPullExchange_waitsTheRoundTrip() async throws {
        let listener = try FramedListener(bind: anyLoopbackPort, connectionsMax: 4, frameBytesMax: 1_024, timeoutMilliseconds: 5_000,
                                          name: "test-echo")
        listener.start { Array($0.reversed()) }
        defer { listener.close() }
        let shaper = LinkShaper(links: [listener.localAddress: LinkShape(roundTripMilliseconds: 80, lossPercent: 100)])
        let caller = try FramedListener(bind: anyLoopbackPort, connectionsMax: 4, frameBytesMax: 1_024, timeoutMilliseconds: 5_000,
                                        name: "test-caller", links: shaper)
        defer { caller.close() }
        let started = nanoseconds()
        let reply = try await caller.exchange([1, 2, 3], with: listener.localAddress)
        XCTAssertEqual(reply, [3, 2, 1], "a stream is delayed, never cut, whatever the link's loss")
        XCTAssertGreaterThanOrEqual(nanoseconds() - started, 80_000_000)
    }
}
