import DomicileModel

/// Turns normalized identifiers into pids with one version of a region's
/// pseudonymization key: `pid = psn:v{n}:{region}:base64url(HMAC(key, kind · 0 · value))`.
public struct Pseudonymizer: Sendable {
    public let region: RegionID
    public let keyVersion: UInt32
    private let key: HMACKey
    private let prefix: PID.Prefix

    public init(region: RegionID, keyVersion: UInt32, key: HMACKey) {
        self.region = region
        self.keyVersion = keyVersion
        self.key = key
        self.prefix = PID.prefix(keyVersion: keyVersion, region: region)
    }

    public func pid(for identifier: Identifier) -> PID {
        // A 32-byte digest on the stack: no allocation besides the pid's text.
        var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &digest) { digest in
            identifier.withHMACInput { key.authenticate($0, into: digest) }
            return PID(prefix: prefix, digest: UnsafeRawBufferPointer(digest))
        }
    }
}

/// Every live version of a region's pseudonymization key, newest first.
/// New subjects get the newest version; lookups try each version, so rotation
/// keeps old pids resolvable until re-keying has moved every subject.
public struct PseudonymizerSet: Sendable {
    public let all: [Pseudonymizer]

    public init(_ pseudonymizers: [Pseudonymizer]) {
        precondition(!pseudonymizers.isEmpty, "a region needs at least one pseudonymization key")
        all = pseudonymizers.sorted { $0.keyVersion > $1.keyVersion }
    }

    public var current: Pseudonymizer { all[0] }

    /// The candidate pids of an identifier, newest key first.
    public func candidates(for identifier: Identifier) -> [PID] {
        all.map { $0.pid(for: identifier) }
    }
}

/// The federation link: `HMAC(federationLinkKey, kind · 0 · value)`. It lets an
/// erasure by identifier reach every region without sending the identifier;
/// it is used for erasure only.
public struct LinkKey: Sendable {
    public let version: UInt32
    private let key: HMACKey

    public init(version: UInt32, key: HMACKey) {
        self.version = version
        self.key = key
    }

    public func link(for identifier: Identifier) -> [UInt8] {
        var link = [UInt8](repeating: 0, count: HMACKey.byteCount)
        link.withUnsafeMutableBytes { output in identifier.withHMACInput { key.authenticate($0, into: output) } }
        return link
    }
}
