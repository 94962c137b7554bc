import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The property the server's TLS framing is fuzzed for (Tests/Fuzz/run tls):
/// a server-side `TLSSession` — the one `HTTPServer` makes per connection,
/// on one end of a socketpair — is fed a client's bytes, drives its
/// handshake and reads, and passes whatever plaintext comes out to the HTTP
/// request parser. On any input: no trap, every refusal a `TLSError` with a
/// reason, no plaintext that a genuine client did not send, and the same
/// request verdicts as the plaintext given to the parser directly. The first
/// byte picks what the rest is:
/// - `0`, handshake: the client's bytes from the first one (a ClientHello,
///   or anything else), then the end of the stream.
/// - `1`, records: the plaintext of a genuine client (this process's own
///   `TLSSession`, after a real handshake), written in records of a size the
///   second byte picks and read with a buffer the third byte sizes.
/// - `2`, tampered: after a real handshake and one genuine request, raw
///   bytes on the socket as if they were records (a forger without the
///   keys), then the end of the stream.
/// Violations stop the process, which is what a fuzzer notices. The
/// certificate is made once per process with `CertificateIssuer`. `check`
/// also says how the input ended, for tests of the seed corpus.
public enum TLSFuzzing {
    enum Mode: UInt8 {
        case handshake = 0, records, tampered
    }

    /// The genuine request mode 2 sends before the forged bytes.
    static let genuineRequest = Array("GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n".utf8)

    /// How the input ended: `refused: REASON` (the server's TLSError), or
    /// the request parser's verdicts on the plaintext (`requests: …`).
    @discardableResult
    public static func check(_ data: UnsafeRawBufferPointer) -> String {
        guard let first = data.first, let mode = Mode(rawValue: first % 3) else { return "empty" }
        let payload = Array(data.dropFirst())
        switch mode {
        case .handshake: return checkHandshake(payload)
        case .records: return checkRecords(payload)
        case .tampered: return checkTampered(payload)
        }
    }

    static func describe(_ refusal: TLSError?, _ plaintext: [UInt8]) -> String {
        let requests = "requests: " + HTTPParserFuzzing.outcomes(plaintext, splits: []).joined(separator: ", ")
        guard let refusal else { return requests }
        return plaintext.isEmpty ? "refused: \(refusal.reason)" : "\(requests); then refused: \(refusal.reason)"
    }

    // MARK: The three modes

    /// Whatever the client's bytes, the server's handshake ends (done, or
    /// refused with a reason); plaintext after a done handshake goes to the parser.
    static func checkHandshake(_ bytes: [UInt8]) -> String {
        let pair = SocketPair()
        defer { pair.close() }
        let server = pair.serverSession()
        pair.clientSend(bytes)
        pair.clientEndStream()
        for _ in 0..<64 {
            let progress: TLSSession.Handshake
            do { progress = try server.handshake() } catch {
                precondition(!error.reason.isEmpty, "a refused handshake without a reason")
                return describe(error, [])
            }
            pair.drainClientSide()
            if progress == .done {
                let reading = readAll(server, bufferBytes: 4_096)
                return describe(reading.refusal, reading.chunks.flatMap { $0 })
            }
        }
        return "handshake unfinished"
    }

    /// A genuine client's plaintext reaches the parser byte for byte, and the
    /// parser's verdicts are those on the plaintext given to it directly.
    static func checkRecords(_ bytes: [UInt8]) -> String {
        let recordBytes = bytes.isEmpty ? 1 : Int(bytes[0]) % 64 + 1
        let bufferBytes = bytes.count < 2 ? 1 : Int(bytes[1]) % 64 + 1
        let plaintext = Array(bytes.dropFirst(2))
        let pair = SocketPair()
        defer { pair.close() }
        let server = pair.serverSession()
        let client = pair.clientSession()
        handshake(client: client, server: server)

        var received: [UInt8] = []
        var readEnds: [Int] = []
        var offset = 0
        while offset < plaintext.count {
            let end = min(offset + recordBytes, plaintext.count)
            let written = plaintext[offset..<end].withUnsafeBytes { piece -> Int in
                guard case .done(let count)? = try? client.write(piece) else { return 0 }
                return count
            }
            offset += written
            let reading = readAll(server, bufferBytes: bufferBytes)
            precondition(reading.refusal == nil, "a genuine record was refused: \(reading.refusal!)")
            for chunk in reading.chunks {
                received += chunk
                readEnds.append(received.count)
            }
            precondition(written > 0 || !reading.chunks.isEmpty, "neither side moved")
        }
        client.shutdown()
        let rest = readAll(server, bufferBytes: bufferBytes)
        for chunk in rest.chunks {
            received += chunk
            readEnds.append(received.count)
        }
        precondition(received == plaintext, "the server read other bytes than the client wrote")
        let direct = HTTPParserFuzzing.outcomes(plaintext, splits: [])
        precondition(HTTPParserFuzzing.outcomes(received, splits: readEnds) == direct,
                     "the parser's verdicts over TLS differ from its verdicts on the plaintext")
        precondition(rest.refusal == nil, "a genuine close_notify was refused: \(rest.refusal!)")
        return describe(nil, received)
    }

    /// Bytes written without the session's keys never come out as plaintext.
    static func checkTampered(_ bytes: [UInt8]) -> String {
        let pair = SocketPair()
        defer { pair.close() }
        let server = pair.serverSession()
        let client = pair.clientSession()
        handshake(client: client, server: server)
        genuineRequest.withUnsafeBytes { _ = try? client.write($0) }
        pair.clientSend(bytes)
        pair.clientEndStream()
        let reading = readAll(server, bufferBytes: 512)
        let received = reading.chunks.flatMap { $0 }
        precondition(received == genuineRequest, "forged bytes came out as plaintext (\(received.count) bytes)")
        if let refusal = reading.refusal { precondition(!refusal.reason.isEmpty, "a refused record without a reason") }
        precondition(HTTPParserFuzzing.outcomes(received, splits: []) == ["GET /healthz 0"], "the genuine request did not parse")
        return describe(reading.refusal, received)
    }

    // MARK: Driving sessions

    /// Both sides' handshakes to the end (they are this process's own, so they must finish).
    static func handshake(client: TLSSession, server: TLSSession) {
        for _ in 0..<64 {
            let clientProgress = try? client.handshake()
            let serverProgress = try? server.handshake()
            precondition(clientProgress != nil && serverProgress != nil, "a genuine handshake was refused")
            if clientProgress == .done && serverProgress == .done { return }
        }
        preconditionFailure("a genuine handshake did not finish")
    }

    /// What `server` decrypts until it would block, the stream ends or it refuses a record.
    static func readAll(_ server: TLSSession, bufferBytes: Int) -> (chunks: [[UInt8]], refusal: TLSError?) {
        var chunks: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: bufferBytes)
        // Each pass returns bytes or ends: bounded by the bytes on the socket (at most the input, plus records).
        for _ in 0..<(64 * 1_024) {
            let result: IOResult<Int>
            do { result = try buffer.withUnsafeMutableBytes { try server.read(into: $0) } } catch let error as TLSError {
                return (chunks, error)
            } catch {
                preconditionFailure("an untyped failure from TLSSession.read: \(error)")
            }
            switch result {
            case .wouldBlock, .done(0):
                return (chunks, nil)
            case .done(let count):
                precondition(count <= bufferBytes, "a read past its buffer")
                chunks.append(Array(buffer[0..<count]))
            }
        }
        preconditionFailure("reads did not end")
    }

    // MARK: Fixtures

    /// The server's and the client's contexts: a CA and a certificate for
    /// 127.0.0.1, made once per process. The server accepts TLS 1.2 too, so
    /// both versions' framing is reached.
    static let contexts: (server: TLSContext, client: TLSContext) = {
        signal(SIGPIPE, SIG_IGN)
        let directory = NSTemporaryDirectory() + "domicile-tls-fuzz-\(getpid())"
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let authority = try! CertificateIssuer.makeAuthority(commonName: "Fuzz CA")
        try! authority.write(certificateTo: directory + "/ca.pem", keyTo: directory + "/ca-key.pem")
        try! CertificateIssuer.issue(commonName: "fuzz", hosts: ["127.0.0.1"], by: authority)
            .write(certificateTo: directory + "/server.pem", keyTo: directory + "/server-key.pem")
        let server = try! TLSContext.server(certificateChainFile: directory + "/server.pem", keyFile: directory + "/server-key.pem",
                                            minimumVersion: .v1_2)
        let client = try! TLSContext.client(caFile: directory + "/ca.pem")
        return (server, client)
    }()

    /// A connected, non-blocking Unix socket pair: the server's end and the client's.
    struct SocketPair {
        let server: Int32
        let client: Int32

        init() {
            var descriptors: [Int32] = [-1, -1]
            precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &descriptors) == 0, "socketpair: errno \(errno)")
            server = descriptors[0]
            client = descriptors[1]
            for descriptor in descriptors { _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK) }
        }

        func serverSession() -> TLSSession { try! TLSSession(context: TLSFuzzing.contexts.server, descriptor: server) }

        func clientSession() -> TLSSession {
            try! TLSSession(context: TLSFuzzing.contexts.client, descriptor: client, expectedHost: "127.0.0.1")
        }

        /// Raw bytes from the client's end (at most 8 KiB in a fuzz input: the socket takes them at once).
        func clientSend(_ bytes: [UInt8]) {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                guard sent > 0 else { return }
                offset += sent
            }
        }

        func clientEndStream() { _ = Glibc.shutdown(client, Int32(SHUT_WR)) }

        /// Reads and drops what the server sent, so it never blocks on a full socket.
        func drainClientSide() {
            var buffer = [UInt8](repeating: 0, count: 16_384)
            while buffer.withUnsafeMutableBytes({ read(client, $0.baseAddress, $0.count) }) > 0 {}
        }

        func close() {
            _ = Glibc.close(server)
            _ = Glibc.close(client)
        }
    }
}
