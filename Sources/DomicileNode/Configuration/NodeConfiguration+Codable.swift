import DomicileModel
import DomicileNet
import DomicileStorage
import Foundation

/// The configuration file's one reading (and writing): docs/CONFIGURATION.md.
/// Each object refuses keys it does not know, each value is checked for its
/// type and range, and every error names the field's path.
extension NodeConfiguration: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case node, region, keyring, policy, principals, http, gossip, log, limits
        case regionLog = "region_log", federation, wan, tls
        case dataDirectory = "data_dir"
        case masterKeyFile = "master_key_file"
    }

    enum HTTPKeys: String, CodingKey, CaseIterable {
        case address, connectionsMax = "connections_max", eventLoopCount = "event_loops"
        case bodyBytesMax = "body_bytes_max", bodyBytesInFlightMax = "body_bytes_in_flight_max"
        case headerBytesMax = "header_bytes_max", requestLineBytesMax = "request_line_bytes_max", headerCountMax = "header_count_max"
        case headerReadTimeoutMilliseconds = "header_read_timeout_ms", bodyReadTimeoutMilliseconds = "body_read_timeout_ms"
        case idleTimeoutMilliseconds = "idle_timeout_ms"
    }

    enum LogKeys: String, CodingKey, CaseIterable {
        case access
    }

    enum FederationKeys: String, CodingKey, CaseIterable {
        case rosters
    }

    enum RegionLogKeys: String, CodingKey, CaseIterable {
        case address, roster, join
        case tickMilliseconds = "tick_ms", electionTicks = "election_ticks"
        case commitTimeoutMilliseconds = "commit_timeout_ms", compactEntries = "compact_entries"
    }

    /// The directory relative paths are resolved against (a `String`); without it they stay as written.
    static let directoryKey = CodingUserInfoKey(rawValue: "domicile.configuration.directory")!

    public init(from decoder: any Decoder) throws {
        let container = try decoder.configurationFields(CodingKeys.self)
        let base = decoder.userInfo[Self.directoryKey] as? String
        func path(_ text: String) -> String {
            guard let base, !text.hasPrefix("/") else { return text }
            return (base as NSString).appendingPathComponent(text)
        }
        node = try container.required(.node) { try NodeName($0) }
        region = try container.required(.region) { try RegionID($0) }
        dataDirectory = try container.required(.dataDirectory, path)
        keyringPath = try container.required(.keyring, path)
        policyPath = try container.required(.policy, path)
        principalsPath = try container.required(.principals, path)
        masterKey = try container.string(.masterKeyFile).map { .file(path: path($0)) } ?? .environment
        guard let http = try container.fields(HTTPKeys.self, .http) else { throw container.invalid(.http, "is required") }
        let address = try http.required(.address) { try SocketAddress(parsing: $0) }
        var settings = try Self.settings(http)
        let bodyBytesInFlightMax = try http.integer(.bodyBytesInFlightMax, in: (1 << 20)...(16 << 30))
        gossip = try container.object(Gossip.self, .gossip) ?? Gossip(address: nil, advertise: nil, seeds: [])
        accessLog = try container.fields(LogKeys.self, .log)?.flag(.access) ?? true
        regionLog = try container.fields(RegionLogKeys.self, .regionLog).map { fields throws(Invalid) in
            var log = RegionLog(address: try fields.required(.address) { try SocketAddress(parsing: $0) },
                                rosterPath: try fields.required(.roster, path))
            log.tickMilliseconds = try fields.integer(.tickMilliseconds, in: 1...10_000).map(Int64.init) ?? log.tickMilliseconds
            log.electionTicks = try fields.integer(.electionTicks, in: 3...1_000) ?? log.electionTicks
            log.join = try fields.flag(.join) ?? false
            log.commitTimeoutMilliseconds = try fields.integer(.commitTimeoutMilliseconds, in: 100...600_000).map(Int64.init)
                ?? log.commitTimeoutMilliseconds
            log.compactEntries = try fields.integer(.compactEntries, in: 10...10_000_000) ?? log.compactEntries
            return log
        }
        federationRosterPaths = try container.fields(FederationKeys.self, .federation)?.strings(.rosters).map(path) ?? []
        limits = try container.object(Limits.self, .limits) ?? Limits()
        wan = try container.object(WAN.self, .wan)
        tls = try Self.tls(container, path: path)

        routeBodyBytesMax = settings.limits.bodyBytesMax
        settings.limits.bodyBytesMax = max(settings.limits.bodyBytesMax, limits.batchBodyBytesMax)
        // Unless configured, the budget holds at least one largest body.
        settings.bodyBytesInFlightMax = bodyBytesInFlightMax ?? max(settings.bodyBytesInFlightMax, settings.limits.bodyBytesMax)
        do { settings = try settings.validated() } catch { throw container.invalid(.http, error.description) }
        self.http = HTTP(address: address, settings: settings)
    }

    /// `http`'s server settings but the body budget, which depends on `limits` too.
    private static func settings(_ http: KeyedDecodingContainer<HTTPKeys>) throws(Invalid) -> HTTPServer.Settings {
        var settings = HTTPServer.Settings()
        func set<Value>(_ key: HTTPKeys, _ range: ClosedRange<Int>, _ field: WritableKeyPath<HTTPServer.Settings, Value>,
                        _ convert: (Int) -> Value) throws(Invalid) {
            if let value = try http.integer(key, in: range) { settings[keyPath: field] = convert(value) }
        }
        try set(.connectionsMax, 1...1_000_000, \.connectionsMax) { $0 }
        try set(.bodyBytesMax, 0...(256 << 20), \.limits.bodyBytesMax) { $0 }
        try set(.headerBytesMax, 256...(1 << 20), \.limits.headerBytesMax) { $0 }
        try set(.requestLineBytesMax, 64...(1 << 20), \.limits.requestLineBytesMax) { $0 }
        try set(.headerCountMax, 4...10_000, \.limits.headerCountMax) { $0 }
        try set(.headerReadTimeoutMilliseconds, 100...3_600_000, \.headerReadTimeoutMilliseconds, Int64.init)
        try set(.bodyReadTimeoutMilliseconds, 100...3_600_000, \.bodyReadTimeoutMilliseconds, Int64.init)
        try set(.idleTimeoutMilliseconds, 100...3_600_000, \.idleTimeoutMilliseconds, Int64.init)
        try set(.eventLoopCount, 1...256, \.eventLoopCount) { $0 }
        return settings
    }

    /// Every field, defaults included, paths as held (absolute once decoded from a file).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(node, forKey: .node)
        try container.encode(region, forKey: .region)
        try container.encode(dataDirectory, forKey: .dataDirectory)
        try container.encode(keyringPath, forKey: .keyring)
        try container.encode(policyPath, forKey: .policy)
        try container.encode(principalsPath, forKey: .principals)
        if case .file(let path) = masterKey { try container.encode(path, forKey: .masterKeyFile) }
        var http = container.nestedContainer(keyedBy: HTTPKeys.self, forKey: .http)
        let settings = self.http.settings
        try http.encode(self.http.address, forKey: .address)
        try http.encode(settings.connectionsMax, forKey: .connectionsMax)
        try http.encode(routeBodyBytesMax, forKey: .bodyBytesMax)
        try http.encode(settings.bodyBytesInFlightMax, forKey: .bodyBytesInFlightMax)
        try http.encode(settings.limits.headerBytesMax, forKey: .headerBytesMax)
        try http.encode(settings.limits.requestLineBytesMax, forKey: .requestLineBytesMax)
        try http.encode(settings.limits.headerCountMax, forKey: .headerCountMax)
        try http.encode(settings.headerReadTimeoutMilliseconds, forKey: .headerReadTimeoutMilliseconds)
        try http.encode(settings.bodyReadTimeoutMilliseconds, forKey: .bodyReadTimeoutMilliseconds)
        try http.encode(settings.idleTimeoutMilliseconds, forKey: .idleTimeoutMilliseconds)
        try http.encode(settings.eventLoopCount, forKey: .eventLoopCount)
        try container.encode(gossip, forKey: .gossip)
        var log = container.nestedContainer(keyedBy: LogKeys.self, forKey: .log)
        try log.encode(accessLog, forKey: .access)
        try container.encode(limits, forKey: .limits)
        if let regionLog {
            var fields = container.nestedContainer(keyedBy: RegionLogKeys.self, forKey: .regionLog)
            try fields.encode(regionLog.address, forKey: .address)
            try fields.encode(regionLog.rosterPath, forKey: .roster)
            try fields.encode(regionLog.tickMilliseconds, forKey: .tickMilliseconds)
            try fields.encode(regionLog.electionTicks, forKey: .electionTicks)
            try fields.encode(regionLog.join, forKey: .join)
            try fields.encode(regionLog.commitTimeoutMilliseconds, forKey: .commitTimeoutMilliseconds)
            try fields.encode(regionLog.compactEntries, forKey: .compactEntries)
        }
        if !federationRosterPaths.isEmpty {
            var fields = container.nestedContainer(keyedBy: FederationKeys.self, forKey: .federation)
            try fields.encode(federationRosterPaths, forKey: .rosters)
        }
        try container.encodeIfPresent(wan, forKey: .wan)
        try encodeTLS(into: &container)
    }
}

/// Encoded as synthesized from these `CodingKeys`.
extension NodeConfiguration.Gossip: Decodable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case address, advertise, seeds, profile
        case probeIntervalMilliseconds = "probe_interval_ms"
        case probeTimeoutMilliseconds = "probe_timeout_ms"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.configurationFields(CodingKeys.self)
        address = try container.parsed(.address) { try SocketAddress(parsing: $0) }
        advertise = try container.parsed(.advertise) { try SocketAddress(parsing: $0) }
        profile = try container.choice(Profile.self, .profile, otherwise: "must be default or loopback") ?? .standard
        probeIntervalMilliseconds = try container.integer(.probeIntervalMilliseconds, in: 10...600_000).map(Int64.init)
        probeTimeoutMilliseconds = try container.integer(.probeTimeoutMilliseconds, in: 1...600_000).map(Int64.init)
        if let interval = probeIntervalMilliseconds, let timeout = probeTimeoutMilliseconds, timeout >= interval {
            throw container.invalid(.probeTimeoutMilliseconds, "must be shorter than gossip.probe_interval_ms")
        }
        if let address, advertise == nil, address.host == "0.0.0.0" || address.host == "::" {
            throw container.invalid(.advertise, "needed when gossip.address binds every interface")
        }
        seeds = []
        for text in try container.strings(.seeds) {
            do { seeds.append(try SocketAddress(parsing: text)) } catch { throw container.invalid(.seeds, error.description) }
        }
    }
}

/// Encoded as synthesized from these `CodingKeys`.
extension NodeConfiguration.Limits: Decodable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case batchReceiptsMax = "batch_receipts_max", batchBodyBytesMax = "batch_body_bytes_max", batchItemsMax = "batch_items_max", auditPageMax = "audit_page_max"
        case clockSkewSecondsMax = "clock_skew_seconds_max", searchResultsCountMax = "search_k_max"
        case readRatePerSecond = "read_rate_per_second", readBurst = "read_burst"
        case distinctSubjectsPerMinute = "distinct_subjects_per_minute"
        case privacyEpsilonPerPeriod = "privacy_epsilon_per_period", privacyDeltaPerPeriod = "privacy_delta_per_period"
        case privacyPeriod = "privacy_period", privacyLabelCaps = "privacy_label_caps"
        case embeddingEpsilonPerPeriod = "embedding_epsilon_per_period", embeddingDeltaPerPeriod = "embedding_delta_per_period"
        case retentionSweepIntervalMilliseconds = "retention_sweep_interval_ms"
        case graphSnapshotIntervalMilliseconds = "graph_snapshot_interval_ms", graphSnapshotChanges = "graph_snapshot_changes"
    }

    enum CapKeys: String, CodingKey, CaseIterable {
        case epsilon, delta
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        let container = try decoder.configurationFields(CodingKeys.self)
        func set<Value>(_ key: CodingKeys, _ range: ClosedRange<Int>, _ field: WritableKeyPath<Self, Value>,
                        _ convert: (Int) -> Value) throws(NodeConfiguration.Invalid) {
            if let value = try container.integer(key, in: range) { self[keyPath: field] = convert(value) }
        }
        func set(_ key: CodingKeys, _ range: ClosedRange<Double>, _ field: WritableKeyPath<Self, Double>) throws(NodeConfiguration.Invalid) {
            if let value = try container.number(key, in: range) { self[keyPath: field] = value }
        }
        try set(.batchReceiptsMax, 1...100_000, \.batchReceiptsMax) { $0 }
        try set(.batchItemsMax, 1...100_000, \.batchItemsMax) { $0 }
        try set(.auditPageMax, 1...100_000, \.auditPageMax) { $0 }
        try set(.batchBodyBytesMax, 1_024...(256 << 20), \.batchBodyBytesMax) { $0 }
        try set(.clockSkewSecondsMax, 0...86_400, \.clockSkewSecondsMax, Int64.init)
        try set(.readRatePerSecond, 1...10_000_000, \.readRatePerSecond, Double.init)
        try set(.readBurst, 1...10_000_000, \.readBurst, Double.init)
        try set(.distinctSubjectsPerMinute, 1...100_000_000, \.distinctSubjectsPerMinute) { $0 }
        try set(.searchResultsCountMax, 1...10_000, \.searchResultsCountMax) { $0 }
        try set(.privacyEpsilonPerPeriod, 0.001...1_000_000_000, \.privacyEpsilonPerPeriod)
        try set(.privacyDeltaPerPeriod, 0...0.1, \.privacyDeltaPerPeriod)
        try set(.embeddingEpsilonPerPeriod, 0.001...1_000_000, \.embeddingEpsilonPerPeriod)
        try set(.embeddingDeltaPerPeriod, 0...0.1, \.embeddingDeltaPerPeriod)
        try set(.retentionSweepIntervalMilliseconds, 100...86_400_000, \.retentionSweepIntervalMilliseconds, Int64.init)
        try set(.graphSnapshotIntervalMilliseconds, 0...86_400_000, \.graphSnapshotIntervalMilliseconds, Int64.init)
        try set(.graphSnapshotChanges, 1...100_000_000, \.graphSnapshotChanges) { $0 }
        privacyPeriod = try container.choice(NodeConfiguration.PrivacyPeriod.self, .privacyPeriod, otherwise: "must be day or month") ?? .month
        privacyLabelCaps = try labelCaps(container)
    }

    /// `limits.privacy_label_caps`: `{"crm": {"epsilon": 2, "delta": 1e-6}}`.
    /// A cap above the region's limit is refused: a label never adds budget.
    /// A cap without `delta` takes the region's δ.
    private func labelCaps(_ limits: KeyedDecodingContainer<CodingKeys>) throws(NodeConfiguration.Invalid) -> [Name: NodeConfiguration.PrivacyLabelCap] {
        guard let labels = try limits.members(.privacyLabelCaps) else { return [:] }
        var caps: [Name: NodeConfiguration.PrivacyLabelCap] = [:]
        for label in labels.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            guard let cap = try labels.fields(CapKeys.self, label) else { throw labels.invalid(label, "must be an object") }
            guard let dataset = try? Name(label.stringValue, what: "dataset") else {
                throw labels.invalid(label, "a dataset label is 1-64 lowercase letters, digits and _, starting with a letter")
            }
            guard let epsilon = try cap.number(.epsilon, in: 0...1_000_000_000) else { throw cap.invalid(.epsilon, "is required") }
            let delta = try cap.number(.delta, in: 0...0.1) ?? privacyDeltaPerPeriod
            guard epsilon <= privacyEpsilonPerPeriod, delta <= privacyDeltaPerPeriod else {
                throw labels.invalid(label, "exceeds the region's limits.privacy_epsilon_per_period or privacy_delta_per_period; "
                                     + "a label cap shares out the region's budget, it never adds to it")
            }
            caps[dataset] = .init(epsilon: epsilon, delta: delta)
        }
        return caps
    }
}
