import COpenSSL
import Foundation

/// A certificate and its private key, as PEM text.
public struct IssuedCertificate: Sendable {
    public let certificatePEM: String
    public let keyPEM: String

    public init(certificatePEM: String, keyPEM: String) {
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
    }

    /// Reads a certificate and key written by `write`.
    public init(certificateFile: String, keyFile: String) throws {
        certificatePEM = try String(contentsOfFile: certificateFile, encoding: .utf8)
        keyPEM = try String(contentsOfFile: keyFile, encoding: .utf8)
    }

    /// Writes the certificate (mode 0644) and the key (mode 0600).
    public func write(certificateTo certificateFile: String, keyTo keyFile: String) throws {
        try Data(certificatePEM.utf8).write(to: URL(fileURLWithPath: certificateFile))
        FileManager.default.createFile(atPath: keyFile, contents: nil, attributes: [.posixPermissions: 0o600])
        try Data(keyPEM.utf8).write(to: URL(fileURLWithPath: keyFile))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
    }
}

/// Makes a local certificate authority and the certificates it issues, with
/// OpenSSL's APIs (P-256 keys, SHA-256 signatures, X.509 v3): what
/// `cluster init` writes beside the node configurations, and what the tests
/// use for expired and wrong-host certificates.
public enum CertificateIssuer {
    /// A self-signed CA certificate valid from now for `validSeconds`.
    public static func makeAuthority(commonName: String, validSeconds: Int = 10 * 365 * 86_400) throws(TLSError) -> IssuedCertificate {
        let key = try newKey()
        defer { EVP_PKEY_free(key) }
        let certificate = try newCertificate(commonName: commonName, key: key, notBeforeOffset: -300, validSeconds: validSeconds)
        defer { X509_free(certificate) }
        X509_set_issuer_name(certificate, X509_get_subject_name(certificate))
        try extend(certificate, issuer: certificate, [
            (NID_basic_constraints, "critical,CA:TRUE"),
            (NID_key_usage, "critical,keyCertSign,cRLSign"),
            (NID_subject_key_identifier, "hash"),
        ])
        try sign(certificate, with: key)
        return try pem(certificate, key)
    }

    /// A certificate for `hosts` (IP addresses and DNS names, its subject
    /// alternative names) usable by servers and clients alike, issued by
    /// `authority`, valid from `notBeforeOffset` seconds from now for
    /// `validSeconds` (a negative offset and a short validity make an
    /// expired certificate, for tests).
    public static func issue(commonName: String, hosts: [String], by authority: IssuedCertificate,
                             notBeforeOffset: Int = -300, validSeconds: Int = 5 * 365 * 86_400) throws(TLSError) -> IssuedCertificate {
        let (authorityCertificate, authorityKey) = try load(authority)
        defer {
            X509_free(authorityCertificate)
            EVP_PKEY_free(authorityKey)
        }
        let key = try newKey()
        defer { EVP_PKEY_free(key) }
        let certificate = try newCertificate(commonName: commonName, key: key, notBeforeOffset: notBeforeOffset, validSeconds: validSeconds)
        defer { X509_free(certificate) }
        X509_set_issuer_name(certificate, X509_get_subject_name(authorityCertificate))
        let names = hosts.map { TLSSession.isIPAddress($0) ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ",")
        var extensions: [(Int32, String)] = [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature,keyEncipherment"),
            (NID_ext_key_usage, "serverAuth,clientAuth"),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ]
        if !names.isEmpty { extensions.append((NID_subject_alt_name, names)) }
        try extend(certificate, issuer: authorityCertificate, extensions)
        try sign(certificate, with: authorityKey)
        return try pem(certificate, key)
    }

    // MARK: OpenSSL

    private static func newKey() throws(TLSError) -> OpaquePointer {
        ERR_clear_error()
        guard let key = domicile_ec_p256_key() else { throw TLSError.fromQueue("cannot make a key") }
        return key
    }

    private static func newCertificate(commonName: String, key: OpaquePointer, notBeforeOffset: Int,
                                       validSeconds: Int) throws(TLSError) -> OpaquePointer {
        guard let certificate = X509_new() else { throw TLSError.fromQueue("cannot make a certificate") }
        var serial = [UInt8](repeating: 0, count: 8)
        guard RAND_bytes(&serial, Int32(serial.count)) == 1 else {
            X509_free(certificate)
            throw TLSError.fromQueue("no randomness for a serial number")
        }
        let number = serial.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } >> 1  // positive
        let named = X509_set_version(certificate, 2) == 1
            && ASN1_INTEGER_set_uint64(X509_get_serialNumber(certificate), number) == 1
            && X509_gmtime_adj(X509_getm_notBefore(certificate), notBeforeOffset) != nil
            && X509_gmtime_adj(X509_getm_notAfter(certificate), notBeforeOffset + validSeconds) != nil
            && X509_set_pubkey(certificate, key) == 1
            && X509_NAME_add_entry_by_txt(X509_get_subject_name(certificate), "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1
        guard named else {
            X509_free(certificate)
            throw TLSError.fromQueue("cannot fill the certificate")
        }
        return certificate
    }

    private static func extend(_ certificate: OpaquePointer, issuer: OpaquePointer, _ extensions: [(Int32, String)]) throws(TLSError) {
        for (nid, value) in extensions where domicile_x509_add_extension(certificate, issuer, nid, value) != 1 {
            throw TLSError.fromQueue("cannot add the extension \(value)")
        }
    }

    private static func sign(_ certificate: OpaquePointer, with key: OpaquePointer) throws(TLSError) {
        guard X509_sign(certificate, key, EVP_sha256()) > 0 else { throw TLSError.fromQueue("cannot sign the certificate") }
    }

    private static func pem(_ certificate: OpaquePointer, _ key: OpaquePointer) throws(TLSError) -> IssuedCertificate {
        let certificatePEM = try writePEM { PEM_write_bio_X509($0, certificate) }
        let keyPEM = try writePEM { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        return IssuedCertificate(certificatePEM: certificatePEM, keyPEM: keyPEM)
    }

    private static func writePEM(_ body: (OpaquePointer) -> Int32) throws(TLSError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw TLSError.fromQueue("cannot make a memory BIO") }
        defer { BIO_free(bio) }
        guard body(bio) == 1 else { throw TLSError.fromQueue("cannot write PEM") }
        var bytes = [UInt8](repeating: 0, count: Int(domicile_bio_pending(bio)))
        let read = BIO_read(bio, &bytes, Int32(bytes.count))
        return String(decoding: bytes.prefix(Int(max(read, 0))), as: UTF8.self)
    }

    private static func load(_ issued: IssuedCertificate) throws(TLSError) -> (certificate: OpaquePointer, key: OpaquePointer) {
        ERR_clear_error()
        let certificate = issued.certificatePEM.withCString { text -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(text, -1) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_X509(bio, nil, nil, nil)
        }
        guard let certificate else { throw TLSError.fromQueue("cannot read the CA certificate") }
        let key = issued.keyPEM.withCString { text -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(text, -1) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let key else {
            X509_free(certificate)
            throw TLSError.fromQueue("cannot read the CA key")
        }
        return (certificate, key)
    }
}
