import CLinux
import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// One TLS connection: an OpenSSL `SSL` over the connection's non-blocking
/// socket (docs/HTTP.md, "TLS"). Touched only on its loop's thread. The
/// handshake is driven explicitly (`handshake()`) before any application
/// byte is read or written; afterwards `read` and `write` behave like
/// `Socket.read` and `Socket.send`: `.wouldBlock` when the socket is not
/// ready, `.done(0)` at the peer's close_notify, and a thrown error for
/// anything the peer got wrong (the caller closes the connection).
/// Public for tests that speak TLS byte by byte over a blocking socket
/// (DomicileTestSupport's RawConnection): there `handshake()` blocks until
/// it is done, and a receive timeout reads as `.wouldBlock`.
package final class TLSSession {
    package enum Handshake: Equatable, Sendable {
        case done
        /// Waiting for the peer's bytes.
        case wantRead
        /// The socket must become writable first.
        case wantWrite
    }

    private let ssl: OpaquePointer
    package private(set) var isEstablished = false
    /// The last call stopped until the socket becomes writable (a read too
    /// can need to write, e.g. to answer a key update).
    private(set) var wantsWritable = false
    private var shutDown = false

    /// A session on `descriptor` (already connected). A client checks the
    /// peer's certificate names `expectedHost` (an IP address or a DNS name).
    package init(context: TLSContext, descriptor: Int32, expectedHost: String? = nil) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.pointer) else { throw TLSError.fromQueue("cannot make a TLS session") }
        self.ssl = ssl
        guard SSL_set_fd(ssl, descriptor) == 1 else { throw TLSError.fromQueue("cannot attach the socket") }
        switch context.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if let expectedHost { try expect(host: expectedHost) }
        }
    }

    deinit { SSL_free(ssl) }

    private func expect(host: String) throws(TLSError) {
        let parameters = SSL_get0_param(ssl)
        if Self.isIPAddress(host) {
            guard X509_VERIFY_PARAM_set1_ip_asc(parameters, host) == 1 else { throw TLSError("cannot expect the address \(host)") }
        } else {
            guard SSL_set1_host(ssl, host) == 1 else { throw TLSError("cannot expect the host \(host)") }
            _ = domicile_ssl_set_host_name(ssl, host)
        }
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// Advances the handshake as far as the socket allows.
    package func handshake() throws(TLSError) -> Handshake {
        guard !isEstablished else { return .done }
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            isEstablished = true
            wantsWritable = false
            return .done
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ:
            wantsWritable = false
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            wantsWritable = true
            return .wantWrite
        default:
            let verdict = SSL_get_verify_result(ssl)
            if verdict != Int(X509_V_OK) {
                ERR_clear_error()
                throw TLSError("certificate refused: \(String(cString: X509_verify_cert_error_string(verdict)))")
            }
            throw TLSError.fromQueue("handshake failed")
        }
    }

    /// Decrypts what is available into `buffer` (at most one record).
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> IOResult<Int> {
        ERR_clear_error()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if result > 0 {
            wantsWritable = false
            return .done(Int(result))
        }
        return try blocked(result, "read")
    }

    /// Encrypts and sends what the socket takes (whole records).
    package func write(_ bytes: UnsafeRawBufferPointer) throws(TLSError) -> IOResult<Int> {
        guard !bytes.isEmpty else { return .done(0) }
        ERR_clear_error()
        let result = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        if result > 0 {
            wantsWritable = false
            return .done(Int(result))
        }
        return try blocked(result, "write")
    }

    private func blocked(_ result: Int32, _ operation: String) throws(TLSError) -> IOResult<Int> {
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ:
            wantsWritable = false
            return .wouldBlock
        case SSL_ERROR_WANT_WRITE:
            wantsWritable = true
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            return .done(0)
        default:
            throw TLSError.fromQueue("\(operation) failed")
        }
    }

    /// Sends close_notify once, best effort (never waits for the peer's).
    package func shutdown() {
        guard isEstablished, !shutDown else { return }
        shutDown = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }
}

/// A connection's byte stream: the socket itself, or TLS over it. The
/// HTTP server's and client's connections read and write through it, so
/// they do not care which.
struct Wire {
    let descriptor: Int32
    let tls: TLSSession?

    init(descriptor: Int32, tls: TLSSession? = nil) {
        self.descriptor = descriptor
        self.tls = tls
    }

    /// True once application bytes may flow (at once without TLS).
    var isEstablished: Bool { tls?.isEstablished ?? true }
    /// The last call waits for the socket to become writable.
    var wantsWritable: Bool { tls?.wantsWritable ?? false }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        guard let tls else { return try Socket.read(descriptor, into: buffer) }
        do { return try tls.read(into: buffer) } catch { throw Self.failure("SSL_read") }
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        guard let tls else { return try Socket.send(descriptor, bytes) }
        do { return try tls.write(bytes) } catch { throw Self.failure("SSL_write") }
    }

    /// Sends close_notify (TLS) and shuts the write side.
    func shutdownWrite() {
        tls?.shutdown()
        _ = Glibc.shutdown(descriptor, Int32(SHUT_WR))
    }

    /// Sends close_notify (TLS, best effort) and closes the socket.
    func close() {
        tls?.shutdown()
        closeDescriptor(descriptor)
    }

    private static func failure(_ function: String) -> SystemError { .protocolFailure(function) }
}

extension SystemError {
    /// A TLS failure (a record the peer got wrong, a session that could not
    /// be made) seen as a protocol error on the socket.
    static func protocolFailure(_ function: String) -> SystemError { SystemError(function: function, errno: EPROTO) }
}
