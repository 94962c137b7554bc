import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// A node's configuration file (JSON; docs/CONFIGURATION.md). Relative paths
/// are relative to the file's directory. Unknown keys are errors: a typo must
/// not silently fall back to a default.
public struct NodeConfiguration: Sendable {
    public struct HTTP: Sendable {
        public var address: SocketAddress
        public var settings: HTTPServer.Settings
    }

    public struct Gossip: Sendable {
        /// UDP (and TCP push-pull) address to bind; nil runs without gossip.
        public var address: SocketAddress?
        /// The address other nodes use, when it differs from `address`.
        public var advertise: SocketAddress?
        public var seeds: [SocketAddress]
        /// `default`: LAN timings in the region pool, WAN across regions;
        /// `loopback`: fast timings for nodes on one machine.
        public var profile: Profile = .standard
        /// Overrides of the profile's probe interval and timeout, for both pools.
        public var probeIntervalMilliseconds: Int64?
        public var probeTimeoutMilliseconds: Int64?

        public enum Profile: String, Sendable {
            case standard = "default"
            case loopback
        }
    }

    /// The period a privacy budget renews over (UTC).
    public enum PrivacyPeriod: String, Sendable {
        case day
        case month

        /// The period containing `time`: `2026-11-22` or `2026-11`.
        func key(at time: Timestamp) -> String {
            let text = time.rfc3339
            return String(text.prefix(self == .day ? 10 : 7))
        }
    }

    /// An admin's allocation of the region's privacy budget to one `dataset`
    /// label: within the region's limit, never adding to it.
    public struct PrivacyLabelCap: Sendable, Equatable {
        public var epsilon: Double
        public var delta: Double

        public init(epsilon: Double, delta: Double) {
            self.epsilon = epsilon
            self.delta = delta
        }
    }

    public struct Limits: Sendable {
        /// Receipts in one `POST /v1/consents/batch` at most.
        public var batchReceiptsMax = 1_000
        /// Events in one `GET /v1/audit` page at most.
        public var auditPageMax = 1_000
        /// Largest body of a batch request (the batch endpoint's own body limit).
        public var batchBodyBytesMax = 8 * 1_024 * 1_024
        /// How far in the future a `collected_at` may be (clock skew), in seconds.
        public var clockSkewSecondsMax: Int64 = 300
        /// Reads and searches per second per principal (token bucket rate), and the bucket's size.
        public var readRatePerSecond: Double = 1_000
        public var readBurst: Double = 2_000
        /// Distinct subjects one principal may touch in a minute before an access anomaly is recorded.
        public var distinctSubjectsPerMinute = 1_000
        /// The region's privacy budget per period (basic composition of
        /// every release and charge in the period, whatever its `dataset` label).
        public var privacyEpsilonPerPeriod = 10.0
        public var privacyDeltaPerPeriod = 1e-5
        public var privacyPeriod = PrivacyPeriod.month
        /// Caps on what some labels may spend of the region's budget per period.
        public var privacyLabelCaps: [Name: PrivacyLabelCap] = [:]
        /// Each subject's budget for exported (noised) embeddings per
        /// period, over all collections.
        public var embeddingEpsilonPerPeriod = 16.0
        public var embeddingDeltaPerPeriod = 1e-5
        /// Results one search may ask for (`k`); above it: 422 `k_too_large`.
        public var searchResultsCountMax = 100
        /// How often the retention sweeper deletes expired feature values and consent grants.
        public var retentionSweepIntervalMilliseconds: Int64 = 60_000
    }

    public var node: NodeName
    public var region: RegionID
    public var dataDirectory: String
    public var http: HTTP
    public var gossip: Gossip
    public var keyringPath: String
    public var masterKey: MasterKeySource
    public var policyPath: String
    public var principalsPath: String
    public var accessLog: Bool
    public var limits: Limits

    /// The body limit of ordinary routes; the HTTP server's own limit is
    /// raised to the batch endpoint's.
    public var routeBodyBytesMax: Int

    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("node.sqlite") }

    public struct Invalid: Error, CustomStringConvertible {
        public let field: String
        public let reason: String
        public var description: String { "config \(field): \(reason)" }
    }

    public static let fileBytesMax = 1 << 20

    public static func load(path: String) throws -> NodeConfiguration {
        let bytes = try FileIO.read(path, byteCountMax: fileBytesMax)
        let base = (path as NSString).deletingLastPathComponent
        return try parse(bytes, relativeTo: base.isEmpty ? "." : base)
    }

    public static func parse(_ bytes: [UInt8], relativeTo base: String) throws(Invalid) -> NodeConfiguration {
        guard let root = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw Invalid(field: "(file)", reason: "not a JSON object")
        }
        var reader = ConfigReader(object: root, path: "")
        let node = try reader.required("node", NodeName.self) { try NodeName($0) }
        let region = try reader.required("region", RegionID.self) { try RegionID($0) }
        func resolve(_ path: String) -> String {
            path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
        }
        let dataDirectory = resolve(try reader.string("data_dir"))
        let keyringPath = resolve(try reader.string("keyring"))
        let policyPath = resolve(try reader.string("policy"))
        let principalsPath = resolve(try reader.string("principals"))
        let masterKey: MasterKeySource = try reader.optionalString("master_key_file").map { .file(path: resolve($0)) } ?? .environment

        var httpReader = try reader.object("http")
        var settings = HTTPServer.Settings()
        let address = try httpReader.required("address", SocketAddress.self) { try SocketAddress(parsing: $0) }
        if let value = try httpReader.optionalInt("connections_max", 1...1_000_000) { settings.connectionsMax = value }
        if let value = try httpReader.optionalInt("body_bytes_max", 0...(256 << 20)) { settings.limits.bodyBytesMax = value }
        let bodyBytesInFlightMax = try httpReader.optionalInt("body_bytes_in_flight_max", (1 << 20)...(16 << 30))
        if let value = try httpReader.optionalInt("header_bytes_max", 256...(1 << 20)) { settings.limits.headerBytesMax = value }
        if let value = try httpReader.optionalInt("request_line_bytes_max", 64...(1 << 20)) { settings.limits.requestLineBytesMax = value }
        if let value = try httpReader.optionalInt("header_count_max", 4...10_000) { settings.limits.headerCountMax = value }
        if let value = try httpReader.optionalInt("header_read_timeout_ms", 100...3_600_000) { settings.headerReadTimeoutMilliseconds = Int64(value) }
        if let value = try httpReader.optionalInt("body_read_timeout_ms", 100...3_600_000) { settings.bodyReadTimeoutMilliseconds = Int64(value) }
        if let value = try httpReader.optionalInt("idle_timeout_ms", 100...3_600_000) { settings.idleTimeoutMilliseconds = Int64(value) }
        if let value = try httpReader.optionalInt("event_loops", 1...256) { settings.eventLoopCount = value }
        try httpReader.finish()

        var gossip = Gossip(address: nil, advertise: nil, seeds: [])
        if var gossipReader = try reader.optionalObject("gossip") {
            if let text = try gossipReader.optionalString("address") {
                do { gossip.address = try SocketAddress(parsing: text) } catch {
                    throw Invalid(field: "gossip.address", reason: error.description)
                }
            }
            if let text = try gossipReader.optionalString("advertise") {
                do { gossip.advertise = try SocketAddress(parsing: text) } catch {
                    throw Invalid(field: "gossip.advertise", reason: error.description)
                }
            }
            if let text = try gossipReader.optionalString("profile") {
                guard let profile = Gossip.Profile(rawValue: text) else {
                    throw Invalid(field: "gossip.profile", reason: "must be default or loopback")
                }
                gossip.profile = profile
            }
            if let value = try gossipReader.optionalInt("probe_interval_ms", 10...600_000) { gossip.probeIntervalMilliseconds = Int64(value) }
            if let value = try gossipReader.optionalInt("probe_timeout_ms", 1...600_000) { gossip.probeTimeoutMilliseconds = Int64(value) }
            if let interval = gossip.probeIntervalMilliseconds, let timeout = gossip.probeTimeoutMilliseconds, timeout >= interval {
                throw Invalid(field: "gossip.probe_timeout_ms", reason: "must be shorter than gossip.probe_interval_ms")
            }
            if let address = gossip.address, gossip.advertise == nil, address.host == "0.0.0.0" || address.host == "::" {
                throw Invalid(field: "gossip.advertise", reason: "needed when gossip.address binds every interface")
            }
            for text in try gossipReader.stringArray("seeds") {
                do { gossip.seeds.append(try SocketAddress(parsing: text)) } catch {
                    throw Invalid(field: "gossip.seeds", reason: error.description)
                }
            }
            try gossipReader.finish()
        }

        var accessLog = true
        if var logReader = try reader.optionalObject("log") {
            accessLog = try logReader.optionalBool("access") ?? true
            try logReader.finish()
        }

        var limits = Limits()
        if var limitsReader = try reader.optionalObject("limits") {
            if let value = try limitsReader.optionalInt("batch_receipts_max", 1...100_000) { limits.batchReceiptsMax = value }
            if let value = try limitsReader.optionalInt("audit_page_max", 1...100_000) { limits.auditPageMax = value }
            if let value = try limitsReader.optionalInt("batch_body_bytes_max", 1_024...(256 << 20)) { limits.batchBodyBytesMax = value }
            if let value = try limitsReader.optionalInt("clock_skew_seconds_max", 0...86_400) { limits.clockSkewSecondsMax = Int64(value) }
            if let value = try limitsReader.optionalInt("read_rate_per_second", 1...10_000_000) { limits.readRatePerSecond = Double(value) }
            if let value = try limitsReader.optionalInt("read_burst", 1...10_000_000) { limits.readBurst = Double(value) }
            if let value = try limitsReader.optionalInt("distinct_subjects_per_minute", 1...100_000_000) { limits.distinctSubjectsPerMinute = value }
            if let value = try limitsReader.optionalInt("search_k_max", 1...10_000) { limits.searchResultsCountMax = value }
            if let value = try limitsReader.optionalDouble("privacy_epsilon_per_period", 0.001...1_000_000_000) { limits.privacyEpsilonPerPeriod = value }
            if let value = try limitsReader.optionalDouble("privacy_delta_per_period", 0...0.1) { limits.privacyDeltaPerPeriod = value }
            if let value = try limitsReader.optionalDouble("embedding_epsilon_per_period", 0.001...1_000_000) {
                limits.embeddingEpsilonPerPeriod = value
            }
            if let value = try limitsReader.optionalDouble("embedding_delta_per_period", 0...0.1) { limits.embeddingDeltaPerPeriod = value }
            if let text = try limitsReader.optionalString("privacy_period") {
                guard let period = PrivacyPeriod(rawValue: text) else {
                    throw Invalid(field: "limits.privacy_period", reason: "must be day or month")
                }
                limits.privacyPeriod = period
            }
            if let value = try limitsReader.optionalInt("retention_sweep_interval_ms", 100...86_400_000) {
                limits.retentionSweepIntervalMilliseconds = Int64(value)
            }
            limits.privacyLabelCaps = try privacyLabelCaps(&limitsReader, within: limits)
            try limitsReader.finish()
        }
        try reader.finish()
        let routeBodyBytesMax = settings.limits.bodyBytesMax
        settings.limits.bodyBytesMax = max(settings.limits.bodyBytesMax, limits.batchBodyBytesMax)
        // Unless configured, the budget holds at least one largest body.
        settings.bodyBytesInFlightMax = bodyBytesInFlightMax ?? max(settings.bodyBytesInFlightMax, settings.limits.bodyBytesMax)
        do { settings = try settings.validated() } catch { throw Invalid(field: "http", reason: error.description) }
        return NodeConfiguration(node: node, region: region, dataDirectory: dataDirectory,
                                 http: HTTP(address: address, settings: settings), gossip: gossip, keyringPath: keyringPath,
                                 masterKey: masterKey, policyPath: policyPath, principalsPath: principalsPath,
                                 accessLog: accessLog, limits: limits, routeBodyBytesMax: routeBodyBytesMax)
    }

    /// `limits.privacy_label_caps`: `{"crm": {"epsilon": 2, "delta": 1e-6}}`.
    /// A cap above the region's limit is refused: a label never adds budget.
    /// A cap without `delta` takes the region's δ.
    static func privacyLabelCaps(_ limitsReader: inout ConfigReader, within limits: Limits) throws(Invalid) -> [Name: PrivacyLabelCap] {
        var caps: [Name: PrivacyLabelCap] = [:]
        for (label, var capReader) in try limitsReader.optionalObjectEntries("privacy_label_caps") {
            let field = "limits.privacy_label_caps.\(label)"
            guard let dataset = try? Name(label, what: "dataset") else {
                throw Invalid(field: field, reason: "a dataset label is 1-64 lowercase letters, digits and _, starting with a letter")
            }
            guard let epsilon = try capReader.optionalDouble("epsilon", 0...1_000_000_000) else {
                throw Invalid(field: field + ".epsilon", reason: "is required")
            }
            let delta = try capReader.optionalDouble("delta", 0...0.1) ?? limits.privacyDeltaPerPeriod
            guard epsilon <= limits.privacyEpsilonPerPeriod, delta <= limits.privacyDeltaPerPeriod else {
                throw Invalid(field: field, reason: "exceeds the region's limits.privacy_epsilon_per_period or privacy_delta_per_period; "
                                  + "a label cap shares out the region's budget, it never adds to it")
            }
            try capReader.finish()
            caps[dataset] = PrivacyLabelCap(epsilon: epsilon, delta: delta)
        }
        return caps
    }
}

/// Reads one JSON object of the configuration, remembering which keys were
/// used so that `finish` can reject the others.
struct ConfigReader {
    private let object: [String: Any]
    private let path: String
    private var used: Set<String> = []

    init(object: [String: Any], path: String) {
        self.object = object
        self.path = path
    }

    private func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private mutating func value(_ key: String) -> Any? {
        used.insert(key)
        guard let value = object[key], !(value is NSNull) else { return nil }
        return value
    }

    mutating func optionalString(_ key: String) throws(NodeConfiguration.Invalid) -> String? {
        guard let raw = value(key) else { return nil }
        guard let text = raw as? String else { throw .init(field: field(key), reason: "must be a string") }
        return text
    }

    mutating func string(_ key: String) throws(NodeConfiguration.Invalid) -> String {
        guard let text = try optionalString(key) else { throw .init(field: field(key), reason: "is required") }
        guard !text.isEmpty else { throw .init(field: field(key), reason: "must not be empty") }
        return text
    }

    mutating func required<T>(_ key: String, _ type: T.Type, _ make: (String) throws -> T) throws(NodeConfiguration.Invalid) -> T {
        let text = try string(key)
        do { return try make(text) } catch { throw .init(field: field(key), reason: "\(error)") }
    }

    mutating func optionalInt(_ key: String, _ range: ClosedRange<Int>) throws(NodeConfiguration.Invalid) -> Int? {
        guard let raw = value(key) else { return nil }
        guard let number = raw as? NSNumber, !Self.isBoolean(number), number.doubleValue == number.doubleValue.rounded() else {
            throw .init(field: field(key), reason: "must be an integer")
        }
        guard range.contains(number.intValue) else {
            throw .init(field: field(key), reason: "must be in \(range.lowerBound)...\(range.upperBound)")
        }
        return number.intValue
    }

    mutating func optionalDouble(_ key: String, _ range: ClosedRange<Double>) throws(NodeConfiguration.Invalid) -> Double? {
        guard let raw = value(key) else { return nil }
        guard let number = raw as? NSNumber, !Self.isBoolean(number) else { throw .init(field: field(key), reason: "must be a number") }
        guard range.contains(number.doubleValue) else {
            throw .init(field: field(key), reason: "must be in \(range.lowerBound)...\(range.upperBound)")
        }
        return number.doubleValue
    }

    mutating func optionalBool(_ key: String) throws(NodeConfiguration.Invalid) -> Bool? {
        guard let raw = value(key) else { return nil }
        guard let number = raw as? NSNumber, Self.isBoolean(number) else { throw .init(field: field(key), reason: "must be true or false") }
        return number.boolValue
    }

    /// Whether JSONSerialization read `true`/`false` (not `1`/`0`: on Linux
    /// both are NSNumbers that `is Bool` accepts; only the type encoding differs).
    private static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }

    mutating func stringArray(_ key: String) throws(NodeConfiguration.Invalid) -> [String] {
        guard let raw = value(key) else { return [] }
        guard let strings = raw as? [String] else { throw .init(field: field(key), reason: "must be an array of strings") }
        return strings
    }

    mutating func optionalObject(_ key: String) throws(NodeConfiguration.Invalid) -> ConfigReader? {
        guard let raw = value(key) else { return nil }
        guard let nested = raw as? [String: Any] else { throw .init(field: field(key), reason: "must be an object") }
        return ConfigReader(object: nested, path: field(key))
    }

    /// The members of an object whose keys are names chosen by the operator, each an object, in key order.
    mutating func optionalObjectEntries(_ key: String) throws(NodeConfiguration.Invalid) -> [(String, ConfigReader)] {
        guard let raw = value(key) else { return [] }
        guard let nested = raw as? [String: Any] else { throw .init(field: field(key), reason: "must be an object") }
        var entries: [(String, ConfigReader)] = []
        for name in nested.keys.sorted() {
            guard let member = nested[name] as? [String: Any] else { throw .init(field: "\(field(key)).\(name)", reason: "must be an object") }
            entries.append((name, ConfigReader(object: member, path: "\(field(key)).\(name)")))
        }
        return entries
    }

    mutating func object(_ key: String) throws(NodeConfiguration.Invalid) -> ConfigReader {
        guard let nested = try optionalObject(key) else { throw .init(field: field(key), reason: "is required") }
        return nested
    }

    func finish() throws(NodeConfiguration.Invalid) {
        if let unknown = object.keys.sorted().first(where: { !used.contains($0) }) {
            throw .init(field: field(unknown), reason: "unknown key")
        }
    }
}
