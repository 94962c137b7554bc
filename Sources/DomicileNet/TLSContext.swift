import COpenSSL
import Foundation

/// A TLS failure: a file that cannot be loaded, or a handshake or record
/// the peer got wrong. `reason` is OpenSSL's (or the verifier's) text; it
/// never holds request data.
public struct TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    public let reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { "TLS: \(reason)" }

    /// The oldest error on this thread's OpenSSL queue (cleared), after `context`.
    static func fromQueue(_ context: String) -> TLSError {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return TLSError(context) }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return TLSError("\(context): \(String(cString: buffer))")
    }
}

/// OpenSSL's process-wide state.
public enum OpenSSLLibrary {
    /// Asks OpenSSL not to free its global state in an `atexit` handler
    /// (`OPENSSL_INIT_NO_ATEXIT`); the kernel reclaims it when the process
    /// ends. Without this, `exit` on one thread frees what an event loop's
    /// TLS call on another thread is still using (the demo's client closing
    /// its connections to nodes it had just stopped crashed with SIGSEGV in
    /// libcrypto as the demo exited). Takes effect only as OpenSSL's first
    /// initialization: call it first thing in `main`.
    public static func keepStateUntilExit() {
        _ = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT), nil)
    }
}

/// The lowest protocol version a context accepts.
public enum TLSVersion: String, Sendable, CaseIterable {
    case v1_2 = "1.2"
    case v1_3 = "1.3"

    var openSSLValue: Int32 { self == .v1_2 ? domicile_tls1_2_version() : domicile_tls1_3_version() }
}

/// One OpenSSL `SSL_CTX`: certificates, trust and versions, shared by the
/// connections made from it. Immutable once made; a reload makes a new one
/// (each connection holds a reference to the context it started with, so
/// replacing it never disturbs an open connection). Cipher suites are
/// OpenSSL's defaults.
public final class TLSContext: @unchecked Sendable {
    public enum Role: Sendable { case server, client }

    let pointer: OpaquePointer
    public let role: Role

    /// A server context: the certificate chain (leaf first) and its key
    /// from PEM files; with `clientCAFile`, clients must present a
    /// certificate issued by that CA (mutual TLS).
    public static func server(certificateChainFile: String, keyFile: String, minimumVersion: TLSVersion = .v1_3,
                              clientCAFile: String? = nil) throws(TLSError) -> TLSContext {
        let context = try TLSContext(role: .server, minimumVersion: minimumVersion)
        try context.useCertificate(chainFile: certificateChainFile, keyFile: keyFile)
        // No session tickets: nothing is written after the handshake unless the application writes.
        SSL_CTX_set_num_tickets(context.pointer, 0)
        if let clientCAFile {
            try context.trust(caFile: clientCAFile)
            SSL_CTX_set_verify(context.pointer, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        return context
    }

    /// A client context that trusts the certificates issued by `caFile`
    /// (PEM, one or more CA certificates) and presents a certificate of
    /// its own when given one (mutual TLS).
    public static func client(caFile: String, certificateChainFile: String? = nil, keyFile: String? = nil,
                              minimumVersion: TLSVersion = .v1_2) throws(TLSError) -> TLSContext {
        let context = try TLSContext(role: .client, minimumVersion: minimumVersion)
        try context.trust(caFile: caFile)
        SSL_CTX_set_verify(context.pointer, SSL_VERIFY_PEER, nil)
        switch (certificateChainFile, keyFile) {
        case (let chain?, let key?): try context.useCertificate(chainFile: chain, keyFile: key)
        case (nil, nil): break
        default: throw TLSError("a client certificate needs both its chain file and its key file")
        }
        return context
    }

    private init(role: Role, minimumVersion: TLSVersion) throws(TLSError) {
        ERR_clear_error()
        guard let pointer = SSL_CTX_new(role == .server ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError.fromQueue("cannot make a TLS context")
        }
        self.pointer = pointer
        self.role = role
        domicile_ssl_ctx_set_defaults(pointer)
        guard domicile_ssl_ctx_set_min_proto_version(pointer, minimumVersion.openSSLValue) == 1 else {
            throw TLSError.fromQueue("cannot set the minimum TLS version")
        }
    }

    deinit { SSL_CTX_free(pointer) }

    private func useCertificate(chainFile: String, keyFile: String) throws(TLSError) {
        ERR_clear_error()
        guard SSL_CTX_use_certificate_chain_file(pointer, chainFile) == 1 else {
            throw TLSError.fromQueue("cannot load the certificate chain \(chainFile)")
        }
        guard SSL_CTX_use_PrivateKey_file(pointer, keyFile, domicile_ssl_filetype_pem()) == 1 else {
            throw TLSError.fromQueue("cannot load the private key \(keyFile)")
        }
        guard SSL_CTX_check_private_key(pointer) == 1 else {
            throw TLSError.fromQueue("the private key \(keyFile) does not match the certificate")
        }
    }

    private func trust(caFile: String) throws(TLSError) {
        ERR_clear_error()
        guard SSL_CTX_load_verify_locations(pointer, caFile, nil) == 1 else {
            throw TLSError.fromQueue("cannot load the CA certificates \(caFile)")
        }
    }
}
