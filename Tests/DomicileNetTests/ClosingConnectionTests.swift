@testable import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// A connection whose last response is being written parses nothing more:
/// what its client still sends is read and dropped, never buffered.
final class ClosingConnectionTests: XCTestCase {
    /// The client asks for a response larger than the socket buffers hold
    /// with `Connection: close`, never reads it, and keeps sending. The
    /// server holds none of it, and cuts the client off after
    /// `lingerBytesMax` (16 MiB) instead of waiting for the write timeout.
    func test_aClientThatNeverReadsAndKeepsSending_isNotBuffered() async throws {
        var settings = HTTPServer.Settings.loopback
        // Long enough that only the discard limit can end the connection here.
        settings.writeTimeoutMilliseconds = 120_000
        let large = [UInt8](repeating: 0x6C, count: 8 * 1_024 * 1_024)
        let fixture = try TestServer(settings: settings, extraRoutes: { router in
            router.add("GET", "/large", .inline { _ in HTTPResponse(status: 200, body: large) })
        })
        // A 4 KiB receive window: the 8 MiB answer stays stuck in the server's output.
        let client = try RawConnection(port: fixture.port, receiveBufferBytes: 4_096)
        client.send("GET /large HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        let chunk = [UInt8](repeating: 0x78, count: 64 * 1_024)
        var sent = 0
        // 64 MiB: more than the discard limit plus every socket buffer on the way.
        while sent < 64 * 1_024 * 1_024, client.send(chunk) { sent += chunk.count }

        let buffered = await fixture.server.bufferedInputBytes()
        XCTAssertEqual(buffered, 0, "the server buffered \(buffered) bytes after \(sent) sent")
        XCTAssertLessThan(sent, 64 * 1_024 * 1_024, "the server closed the connection past the discard limit")
        XCTAssertGreaterThan(sent + chunk.count, HTTPConnection.lingerBytesMax, "it read and dropped up to the limit first")
        await fixture.stop()
    }

    /// A client that sends its request and then ends its side (`shutdown`)
    /// still gets the whole response of a closing connection.
    func test_aClientThatEndsItsSideAfterTheRequest_stillGetsTheResponse() async throws {
        let body = [UInt8](repeating: 0x6D, count: 4 * 1_024 * 1_024)
        let fixture = try TestServer(extraRoutes: { router in
            router.add("GET", "/large", .inline { _ in HTTPResponse(status: 200, body: body) })
        })
        let client = try RawConnection(port: fixture.port)
        client.send("GET /large HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        shutdown(client.descriptor, Int32(SHUT_WR))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body.count, body.count)
        XCTAssertTrue(client.isClosedByPeer(), "the pipelined request is not answered")
        await fixture.stop()
    }
}
