import DomicileNet

extension NodeConfiguration {
    /// `tls`: how the node's HTTP API is carried (docs/CONFIGURATION.md).
    /// There is no default: a configuration names its certificate, or says
    /// `{"plaintext": true}`, which the node logs at start and `/readyz`
    /// reports (no silent plaintext).
    public enum TLS: Sendable, Equatable {
        /// `{"plaintext": true}`: HTTP in clear, to and from peers too.
        case plaintext
        case files(Files)

        /// The PEM files of a node's TLS identity and trust.
        public struct Files: Sendable, Equatable {
            /// The node's certificate chain, leaf first (`cert_file`).
            public var certificateFile: String
            /// Its private key (`key_file`).
            public var keyFile: String
            /// The CA the node trusts in its peers' certificates (`ca_file`):
            /// the node's calls to other nodes verify against it.
            public var caFile: String
            /// The lowest version the server accepts (`min_version`).
            public var minimumVersion: TLSVersion = .v1_3

            public init(certificateFile: String, keyFile: String, caFile: String, minimumVersion: TLSVersion = .v1_3) {
                self.certificateFile = certificateFile
                self.keyFile = keyFile
                self.caFile = caFile
                self.minimumVersion = minimumVersion
            }
        }

        /// `tls` in `/readyz` and the start log: `tls` or `plaintext`.
        public var transport: String {
            if case .plaintext = self { return "plaintext" }
            return "tls"
        }

        /// The server's context, read from the files now (start and reload).
        func serverContext() throws(TLSError) -> TLSContext? {
            guard case .files(let files) = self else { return nil }
            return try .server(certificateChainFile: files.certificateFile, keyFile: files.keyFile, minimumVersion: files.minimumVersion)
        }

        /// The context of the node's calls to its peers: it trusts `ca_file`
        /// and presents the node's certificate when asked.
        func peerClientContext() throws(TLSError) -> TLSContext? {
            guard case .files(let files) = self else { return nil }
            return try .client(caFile: files.caFile, certificateChainFile: files.certificateFile, keyFile: files.keyFile)
        }
    }

    enum TLSKeys: String, CodingKey, CaseIterable {
        case plaintext, certificateFile = "cert_file", keyFile = "key_file", caFile = "ca_file", minimumVersion = "min_version"
    }

    /// Reads `tls`; relative paths through `path`.
    static func tls(_ container: KeyedDecodingContainer<CodingKeys>, path: (String) -> String) throws(Invalid) -> TLS {
        guard let fields = try container.fields(TLSKeys.self, .tls) else {
            throw container.invalid(.tls, #"is required: give cert_file, key_file and ca_file, or {"plaintext": true} to serve HTTP in clear"#)
        }
        if let plaintext = try fields.flag(.plaintext) {
            guard plaintext else { throw fields.invalid(.plaintext, "must be true when present (leave it out to use TLS)") }
            for key in TLSKeys.allCases where key != .plaintext && fields.contains(key) {
                throw fields.invalid(key, "cannot go with plaintext")
            }
            return .plaintext
        }
        var files = TLS.Files(certificateFile: try fields.required(.certificateFile, path), keyFile: try fields.required(.keyFile, path),
                              caFile: try fields.required(.caFile, path))
        files.minimumVersion = try fields.choice(TLSVersion.self, .minimumVersion, otherwise: #"must be "1.3" or "1.2""#) ?? .v1_3
        return .files(files)
    }

    func encodeTLS(into container: inout KeyedEncodingContainer<CodingKeys>) throws {
        var fields = container.nestedContainer(keyedBy: TLSKeys.self, forKey: .tls)
        switch tls {
        case .plaintext:
            try fields.encode(true, forKey: .plaintext)
        case .files(let files):
            try fields.encode(files.certificateFile, forKey: .certificateFile)
            try fields.encode(files.keyFile, forKey: .keyFile)
            try fields.encode(files.caFile, forKey: .caFile)
            try fields.encode(files.minimumVersion.rawValue, forKey: .minimumVersion)
        }
    }
}
