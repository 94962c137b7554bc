@testable import domicile
import DomicileTestSupport
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `domicile bench region`: its delay relay carries a channel's bytes both
/// ways, in order, whatever the delay, and ends both sides when one ends;
/// a wrong command line exits 2 before any node starts.
final class BenchRegionTests: XCTestCase {
    func test_delayRelay_carriesBytesBothWaysInOrder_andEndsBothSides() throws {
        let (upstream, upstreamPort) = try listenOnLoopback()
        defer { close(upstream) }
        let relayPort = try LocalFederation.freePortBase(count: 1)
        let relay = try DelayRelay(routes: [(listen: relayPort, upstream: upstreamPort)])
        defer { relay.stop() }

        let client = try connectToLoopback(relayPort)
        var clientOpen = true
        defer { if clientOpen { close(client) } }
        let server = accept(upstream, nil, nil)
        XCTAssertGreaterThanOrEqual(server, 0)
        defer { close(server) }
        for descriptor in [client, server] { setReceiveTimeout(descriptor, seconds: 10) }

        try send(Array("hello".utf8), on: client)
        XCTAssertEqual(try receive(5, from: server), Array("hello".utf8))
        try send(Array("world".utf8), on: server)
        XCTAssertEqual(try receive(5, from: client), Array("world".utf8))

        // With a delay, many small writes still arrive whole and in order.
        relay.setDelay(milliseconds: 3)
        var sent: [UInt8] = []
        for index in 0..<200 {
            let chunk = Array("chunk \(index);".utf8)
            try send(chunk, on: client)
            sent += chunk
        }
        XCTAssertEqual(try receive(sent.count, from: server), sent)

        close(client)
        clientOpen = false
        var byte: UInt8 = 0
        XCTAssertEqual(read(server, &byte, 1), 0, "the relay ends the upstream side when the client's side ends")
    }

    func test_benchRegion_refusesAWrongCommandLine() throws {
        XCTAssertEqual(try Binary.run(["bench", "region", "--writers", "0"]).status, 2)
        XCTAssertEqual(try Binary.run(["bench", "region", "--delays", "fast"]).status, 2)
        XCTAssertEqual(try Binary.run(["bench", "region", "--rounds", "0"]).status, 2)
    }

    // MARK: Blocking loopback sockets

    private func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        return address
    }

    private func listenOnLoopback() throws -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard descriptor >= 0, bound, listen(descriptor, 4) == 0 else { throw Failure(text: "listen: \(errno)") }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    private func connectToLoopback(_ port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard descriptor >= 0, connected == 0 else { throw Failure(text: "connect: \(errno)") }
        return descriptor
    }

    private func setReceiveTimeout(_ descriptor: Int32, seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    private func send(_ bytes: [UInt8], on descriptor: Int32) throws {
        let written = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard written == bytes.count else { throw Failure(text: "send: \(errno)") }
    }

    /// Reads exactly `count` bytes (or throws on end, error or timeout).
    private func receive(_ count: Int, from descriptor: Int32) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + offset, count - offset) }
            guard got > 0 else { throw Failure(text: "read after \(offset) of \(count) bytes: \(got), errno \(errno)") }
            offset += got
        }
        return bytes
    }

    private struct Failure: Error {
        let text: String
    }
}
