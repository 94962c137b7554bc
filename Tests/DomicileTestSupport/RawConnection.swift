import DomicileNet
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP connection for tests that need byte-exact control over
/// what is sent (malformed requests, pipelining, slow clients), in clear or,
/// given a CA file, over TLS (the bytes are then the plaintext inside it:
/// `NodeProcess.rawConnection()` picks as its node serves).
/// Used from one thread at a time (tests hand it to one helper thread).
public final class RawConnection: @unchecked Sendable {
    public let descriptor: Int32
    /// The TLS session over the socket, nil in clear.
    private var tls: TLSSession?

    public struct Response {
        public let status: Int
        public let headers: [String: String]
        public let body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
        public func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    public enum Failure: Error { case connect(Int32), closed, timeout, malformed(String) }

    /// `receiveBufferBytes`: a fixed, small receive window (set before
    /// connecting), for a client that must not take in a large response.
    /// With `caFile`, the TLS handshake is done here (verifying `host`).
    public init(port: UInt16, host: String = "127.0.0.1", receiveTimeoutSeconds: Int = 10, receiveBufferBytes: Int32? = nil,
                caFile: String? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var bytes = receiveBufferBytes {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &bytes, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            throw Failure.connect(code)
        }
        setTimeout(seconds: receiveTimeoutSeconds)
        if let caFile { try startTLS(caFile: caFile, host: host) }
    }

    private func startTLS(caFile: String, host: String) throws {
        // OpenSSL writes with write(2): a server gone away must fail the write, not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        let session = try TLSSession(context: try TLSContext.client(caFile: caFile), descriptor: descriptor, expectedHost: host)
        // A blocking socket: the handshake runs to its end (or the receive timeout).
        guard try session.handshake() == .done else {
            close(descriptor)
            isOpen = false
            throw Failure.timeout
        }
        tls = session
    }

    private var isOpen = true

    deinit { if isOpen { close(descriptor) } }

    /// Closes with a reset (RST) instead of an orderly end of stream.
    public func reset() {
        guard isOpen else { return }
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(descriptor)
        isOpen = false
    }

    public func setTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { all -> Int in
                let rest = UnsafeRawBufferPointer(rebasing: all[offset...])
                guard let tls else { return Glibc.send(descriptor, rest.baseAddress!, rest.count, Int32(MSG_NOSIGNAL)) }
                guard case .done(let count)? = try? tls.write(rest) else { return -1 }
                return count
            }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    private var buffer: [UInt8] = []

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count: Int
        if let tls {
            // A receive timeout is `.wouldBlock`; a TLS error, like a reset, ends the connection.
            switch try? chunk.withUnsafeMutableBytes({ try tls.read(into: $0) }) {
            case .done(let read)?: count = read
            case .wouldBlock?: throw Failure.timeout
            case nil: throw Failure.closed
            }
        } else {
            count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 { throw errno == EAGAIN ? Failure.timeout : Failure.closed }
        }
        if count == 0 { throw Failure.closed }
        buffer.append(contentsOf: chunk[0..<count])
    }

    /// Reads one response (Content-Length framed; the server always sends it).
    public func readResponse() throws -> Response { try readResponse(withBody: true) }

    /// Reads the status line and headers of one response, not its body (the
    /// answer to a HEAD, whose Content-Length describes a body never sent).
    public func readResponseHead() throws -> Response { try readResponse(withBody: false) }

    private func readResponse(withBody: Bool) throws -> Response {
        while true {
            if let end = headEnd() {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failure.malformed(head) }
                var headers: [String: String] = [:]
                for line in lines where !line.isEmpty {
                    guard let colon = line.firstIndex(of: ":") else { throw Failure.malformed(line) }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                let length = withBody ? Int(headers["content-length"] ?? "0") ?? 0 : 0
                while buffer.count < end + 4 + length { try fill() }
                let body = Array(buffer[(end + 4)..<(end + 4 + length)])
                buffer.removeFirst(end + 4 + length)
                return Response(status: status, headers: headers, body: body)
            }
            try fill()
        }
    }

    /// Reads exactly `count` bytes (a binary frame, for instance).
    public func read(exactly count: Int) throws -> [UInt8] {
        while buffer.count < count { try fill() }
        defer { buffer.removeFirst(count) }
        return Array(buffer[0..<count])
    }

    /// True if the server closed the connection (reads end-of-file in time).
    public func isClosedByPeer(timeoutSeconds: Int = 5) -> Bool {
        setTimeout(seconds: timeoutSeconds)
        while true {
            do { try fill() } catch Failure.closed { return true } catch { return false }
        }
    }

    private func headEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for index in 0...(buffer.count - 4) where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
            return index
        }
        return nil
    }
}
