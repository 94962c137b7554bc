import DomicileNode
import DomicileTestSupport
import Foundation
import XCTest

final class ConfigurationTests: XCTestCase {
    let valid: [String: Any] = [
        "node": "eu-1", "region": "eu", "data_dir": "data", "keyring": "k.keyring", "policy": "policy.json",
        "principals": "principals.json", "http": ["address": "127.0.0.1:7100"], "tls": ["plaintext": true],
    ]

    func parse(_ object: [String: Any]) throws -> NodeConfiguration {
        try NodeConfiguration.decode(Array(try JSONSerialization.data(withJSONObject: object)), relativeTo: "/etc/domicile")
    }

    func test_configuration_resolvesPathsAndDefaults() throws {
        var object = valid
        object["master_key_file"] = "/secrets/master.key"
        object["limits"] = ["batch_receipts_max": 50, "read_burst": 1, "retention_sweep_interval_ms": 1_000]
        object["log"] = ["access": false]
        let configuration = try parse(object)
        XCTAssertEqual(configuration.limits.readBurst, 1, "1 is a number, not true")
        XCTAssertEqual(configuration.limits.retentionSweepIntervalMilliseconds, 1_000)
        XCTAssertFalse(configuration.accessLog)
        XCTAssertEqual(configuration.dataDirectory, "/etc/domicile/data")
        XCTAssertEqual(configuration.databasePath, "/etc/domicile/data/node.sqlite")
        XCTAssertEqual(configuration.masterKey, .file(path: "/secrets/master.key"))
        XCTAssertEqual(configuration.limits.batchReceiptsMax, 50)
        XCTAssertEqual(configuration.http.address.port, 7100)
        XCTAssertEqual(try parse(valid).masterKey, .environment)
    }

    func test_configuration_errorsNameTheField() {
        func expect(_ field: String, _ change: (inout [String: Any]) -> Void) {
            var object = valid
            change(&object)
            XCTAssertThrowsError(try parse(object), field) { error in
                XCTAssertEqual((error as? NodeConfiguration.Invalid)?.field, field, "\(error)")
            }
        }
        expect("node") { $0["node"] = nil }
        expect("node") { $0["node"] = "EU 1" }
        expect("region") { $0["region"] = "Europe" }
        expect("data_dir") { $0["data_dir"] = "" }
        expect("http") { $0["http"] = nil }
        expect("http.address") { $0["http"] = ["address": "localhost"] }
        expect("http.connections_max") { $0["http"] = ["address": "127.0.0.1:1", "connections_max": 0] }
        expect("http.idle_timeout_ms") { $0["http"] = ["address": "127.0.0.1:1", "idle_timeout_ms": "soon"] }
        expect("http.adress") { $0["http"] = ["address": "127.0.0.1:1", "adress": "typo"] }
        expect("gossip.seeds") { $0["gossip"] = ["seeds": ["nowhere"]] }
        expect("limits.batch_receipts_max") { $0["limits"] = ["batch_receipts_max": -1] }
        expect("polcy") { $0["polcy"] = "typo.json" }
        expect("limits.read_burst") { $0["limits"] = ["read_burst": true] }
        expect("log.access") { $0["log"] = ["access": 1] }
        expect("http") { $0["http"] = ["address": "127.0.0.1:1", "body_bytes_in_flight_max": 1 << 20] }
    }

    /// The in-flight body budget holds at least one largest body (the batch
    /// route's) unless configured; configured below it, the node refuses to start.
    func test_configuration_bodyBudget_holdsTheLargestBody() throws {
        var object = valid
        object["limits"] = ["batch_body_bytes_max": 100 << 20]
        let configuration = try parse(object)
        XCTAssertEqual(configuration.http.settings.limits.bodyBytesMax, 100 << 20)
        XCTAssertEqual(configuration.http.settings.bodyBytesInFlightMax, 100 << 20)
        XCTAssertEqual(try parse(valid).http.settings.bodyBytesInFlightMax, 64 << 20)
        object["http"] = ["address": "127.0.0.1:1", "body_bytes_in_flight_max": 200 << 20]
        XCTAssertEqual(try parse(object).http.settings.bodyBytesInFlightMax, 200 << 20)
    }

    /// A label cap shares out the region's privacy budget: at most the
    /// region's limit, for a valid label; δ defaults to the region's.
    func test_configuration_privacyLabelCaps_neverAddBudget() throws {
        var object = valid
        object["limits"] = ["privacy_epsilon_per_period": 5, "privacy_label_caps": ["trial": ["epsilon": 1], "crm": ["epsilon": 5, "delta": 1e-7]]]
        let caps = try parse(object).limits.privacyLabelCaps
        XCTAssertEqual(caps.count, 2)
        XCTAssertEqual(caps.first { $0.key.rawValue == "trial" }?.value, .init(epsilon: 1, delta: 1e-5))
        XCTAssertEqual(caps.first { $0.key.rawValue == "crm" }?.value, .init(epsilon: 5, delta: 1e-7))
        func refused(_ caps: Any, _ field: String) {
            var object = valid
            object["limits"] = ["privacy_epsilon_per_period": 5, "privacy_label_caps": caps]
            XCTAssertThrowsError(try parse(object)) { error in
                XCTAssertEqual((error as? NodeConfiguration.Invalid)?.field, field, "\(error)")
            }
        }
        refused(["crm": ["epsilon": 5.5]], "limits.privacy_label_caps.crm")
        refused(["crm": ["epsilon": 1, "delta": 1e-4]], "limits.privacy_label_caps.crm")
        refused(["CRM": ["epsilon": 1]], "limits.privacy_label_caps.CRM")
        refused(["crm": ["delta": 1e-6]], "limits.privacy_label_caps.crm.epsilon")
        refused(["crm": ["epsilon": 1, "epsilom": 1]], "limits.privacy_label_caps.crm.epsilom")
        refused(["crm": 1], "limits.privacy_label_caps.crm")
    }

    /// Refuses `object` with `config FIELD: REASON`.
    func refuses(_ object: Any, _ field: String, _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try NodeConfiguration.decode(Array(try JSONSerialization.data(withJSONObject: object)), relativeTo: "/etc/domicile")
            XCTFail("accepted; expected \(field)", file: file, line: line)
        } catch {
            XCTAssertEqual("\(error)", "config \(field): \(reason)", file: file, line: line)
        }
    }

    func with(_ section: String, _ members: [String: Any]) -> [String: Any] {
        var object = valid
        object[section] = section == "http" ? members.merging(["address": "127.0.0.1:1"]) { given, _ in given } : members
        return object
    }

    /// Every range and rule of docs/CONFIGURATION.md refuses with the field's full path.
    func test_configuration_everyValidationError_namesItsFieldPath() {
        let ranges: [(String, String, Any, String)] = [
            ("http", "connections_max", 1_000_001, "1...1000000"), ("http", "body_bytes_max", -1, "0...268435456"),
            ("http", "body_bytes_in_flight_max", 1, "1048576...17179869184"), ("http", "header_bytes_max", 255, "256...1048576"),
            ("http", "request_line_bytes_max", 63, "64...1048576"), ("http", "header_count_max", 3, "4...10000"),
            ("http", "header_read_timeout_ms", 99, "100...3600000"), ("http", "body_read_timeout_ms", 99, "100...3600000"),
            ("http", "idle_timeout_ms", 3_600_001, "100...3600000"), ("http", "event_loops", 257, "1...256"),
            ("gossip", "probe_interval_ms", 9, "10...600000"), ("gossip", "probe_timeout_ms", 0, "1...600000"),
            ("limits", "batch_receipts_max", 0, "1...100000"), ("limits", "audit_page_max", 100_001, "1...100000"),
            ("limits", "batch_body_bytes_max", 1_023, "1024...268435456"), ("limits", "clock_skew_seconds_max", 86_401, "0...86400"),
            ("limits", "read_rate_per_second", 0, "1...10000000"), ("limits", "read_burst", 10_000_001, "1...10000000"),
            ("limits", "distinct_subjects_per_minute", 0, "1...100000000"), ("limits", "search_k_max", 10_001, "1...10000"),
            ("limits", "privacy_epsilon_per_period", 0.0001, "0.001...1000000000.0"), ("limits", "privacy_delta_per_period", 0.2, "0.0...0.1"),
            ("limits", "embedding_epsilon_per_period", 2e6, "0.001...1000000.0"), ("limits", "embedding_delta_per_period", -1, "0.0...0.1"),
            ("limits", "retention_sweep_interval_ms", 99, "100...86400000"),
            ("limits", "graph_snapshot_interval_ms", -1, "0...86400000"), ("limits", "graph_snapshot_changes", 0, "1...100000000"),
        ]
        for (section, key, value, range) in ranges {
            refuses(with(section, [key: value]), "\(section).\(key)", "must be in \(range)")
        }
        refuses(with("http", ["address": "127.0.0.1"]), "http.address", "invalid address: expected host:port")
        refuses(with("gossip", ["address": "127.0.0.1:99999"]), "gossip.address", "invalid address: port must be 0-65535")
        refuses(with("gossip", ["address": "0.0.0.0:7300"]), "gossip.advertise", "needed when gossip.address binds every interface")
        refuses(with("gossip", ["profile": "wan"]), "gossip.profile", "must be default or loopback")
        refuses(with("gossip", ["probe_interval_ms": 100, "probe_timeout_ms": 100]), "gossip.probe_timeout_ms",
                "must be shorter than gossip.probe_interval_ms")
        refuses(with("limits", ["privacy_period": "week"]), "limits.privacy_period", "must be day or month")
        refuses(with("limits", ["privacy_label_caps": ["crm": ["epsilon": 20]]]), "limits.privacy_label_caps.crm",
                "exceeds the region's limits.privacy_epsilon_per_period or privacy_delta_per_period; "
                + "a label cap shares out the region's budget, it never adds to it")
        refuses(with("limits", ["privacy_label_caps": ["crm": ["epsilon": 1, "delta": 0.5]]]), "limits.privacy_label_caps.crm.delta",
                "must be in 0.0...0.1")
        refuses(with("limits", ["privacy_label_caps": ["crm": [:]]]), "limits.privacy_label_caps.crm.epsilon", "is required")
        refuses(with("http", ["body_bytes_max": 2 << 20, "body_bytes_in_flight_max": 1 << 20]), "http",
                "HTTP settings: the in-flight body budget must hold the largest body")
        for key in ["node", "region", "data_dir", "keyring", "policy", "principals"] {
            var object = valid
            object[key] = nil
            refuses(object, key, "is required")
            object[key] = ""
            refuses(object, key, "must not be empty")
        }
        var object = valid
        object["http"] = nil
        refuses(object, "http", "is required")
    }

    /// `tls` has no default: certificate files, or plaintext said explicitly.
    func test_configuration_tls_isRequired_andPlaintextIsExplicit() throws {
        var object = valid
        object["tls"] = nil
        refuses(object, "tls", #"is required: give cert_file, key_file and ca_file, or {"plaintext": true} to serve HTTP in clear"#)
        refuses(with("tls", ["plaintext": false]), "tls.plaintext", "must be true when present (leave it out to use TLS)")
        refuses(with("tls", ["plaintext": true, "cert_file": "a.pem"]), "tls.cert_file", "cannot go with plaintext")
        refuses(with("tls", ["cert_file": "a.pem", "key_file": "a-key.pem"]), "tls.ca_file", "is required")
        refuses(with("tls", ["cert_file": "a.pem", "key_file": "a-key.pem", "ca_file": "ca.pem", "min_version": "1.1"]),
                "tls.min_version", #"must be "1.3" or "1.2""#)
        refuses(with("tls", ["cert_file": "a.pem", "key_file": "a-key.pem", "ca_file": "ca.pem", "verify": false]), "tls.verify",
                "unknown key")
        XCTAssertEqual(try parse(valid).tls, .plaintext)
        let files = try parse(with("tls", ["cert_file": "a.pem", "key_file": "/keys/a-key.pem", "ca_file": "../ca.pem"])).tls
        XCTAssertEqual(files, .files(.init(certificateFile: "/etc/domicile/a.pem", keyFile: "/keys/a-key.pem", caFile: "/etc/domicile/../ca.pem")))
    }

    /// A misspelt key, at any depth, is refused by its path rather than
    /// ignored; so is a value of the wrong type.
    func test_configuration_unknownOrMistypedField_namesItsPath() {
        var object = valid
        object["dta_dir"] = "data"
        refuses(object, "dta_dir", "unknown key")
        refuses(with("http", ["conections_max": 1]), "http.conections_max", "unknown key")
        refuses(with("gossip", ["seed": ["127.0.0.1:7300"]]), "gossip.seed", "unknown key")
        refuses(with("log", ["acess": true]), "log.acess", "unknown key")
        refuses(with("limits", ["search_k": 10]), "limits.search_k", "unknown key")
        refuses(with("limits", ["privacy_label_caps": ["crm": ["epsilon": 1, "detla": 1e-6]]]), "limits.privacy_label_caps.crm.detla", "unknown key")

        refuses(with("http", ["connections_max": 1.5]), "http.connections_max", "must be an integer")
        refuses(with("http", ["event_loops": "4"]), "http.event_loops", "must be an integer")
        refuses(with("http", ["address": 7100]), "http.address", "must be a string")
        refuses(with("gossip", ["seeds": "127.0.0.1:7300"]), "gossip.seeds", "must be an array of strings")
        refuses(with("limits", ["privacy_delta_per_period": "1e-5"]), "limits.privacy_delta_per_period", "must be a number")
        refuses(with("limits", ["privacy_label_caps": ["crm": ["epsilon": false]]]), "limits.privacy_label_caps.crm.epsilon", "must be a number")
        refuses(with("log", ["access": "yes"]), "log.access", "must be true or false")
        refuses(with("limits", ["privacy_label_caps": ["crm", "trial"]]), "limits.privacy_label_caps", "must be an object")
        for section in ["gossip", "log", "limits"] {
            var object = valid
            object[section] = [1]
            refuses(object, section, "must be an object")
        }
        object = valid
        object["http"] = "127.0.0.1:7100"
        refuses(object, "http", "must be an object")
        refuses([valid], "(file)", "not a JSON object")
    }

    /// Encoding a configuration writes the file format back: every key of a
    /// file that sets them all, with the same values, and it decodes to an
    /// equal configuration.
    func test_configuration_roundTrip_ofAFullConfiguration_isIdentical() throws {
        let file: [String: Any] = [
            "node": "eu-7", "region": "eu", "data_dir": "/var/lib/domicile", "keyring": "/etc/domicile/eu-7.keyring",
            "master_key_file": "/secrets/master.key", "policy": "/etc/domicile/policy.json", "principals": "/etc/domicile/principals.json",
            "tls": ["cert_file": "/etc/domicile/eu-7.pem", "key_file": "/etc/domicile/eu-7-key.pem", "ca_file": "/etc/domicile/ca.pem",
                    "min_version": "1.2"],
            "http": ["address": "127.0.0.1:7100", "connections_max": 512, "body_bytes_max": 2 << 20, "body_bytes_in_flight_max": 128 << 20,
                     "header_bytes_max": 16_384, "request_line_bytes_max": 4_096, "header_count_max": 50, "header_read_timeout_ms": 5_000,
                     "body_read_timeout_ms": 20_000, "idle_timeout_ms": 30_000, "event_loops": 3],
            "gossip": ["address": "0.0.0.0:7300", "advertise": "10.0.0.7:7300", "seeds": ["10.0.0.8:7300", "[::1]:7301"],
                       "profile": "loopback", "probe_interval_ms": 500, "probe_timeout_ms": 200],
            "log": ["access": false],
            "limits": ["batch_receipts_max": 50, "batch_items_max": 40, "audit_page_max": 200, "batch_body_bytes_max": 16 << 20, "clock_skew_seconds_max": 60,
                       "read_rate_per_second": 300, "read_burst": 600, "distinct_subjects_per_minute": 70, "search_k_max": 25,
                       "privacy_epsilon_per_period": 4.5, "privacy_delta_per_period": 1e-6,
                       "privacy_label_caps": ["crm": ["epsilon": 2, "delta": 1e-7], "trial": ["epsilon": 0.5, "delta": 1e-6]],
                       "embedding_epsilon_per_period": 12, "embedding_delta_per_period": 2e-6, "privacy_period": "day",
                       "retention_sweep_interval_ms": 5_000, "graph_snapshot_interval_ms": 60_000, "graph_snapshot_changes": 500],
        ]
        let configuration = try parse(file)
        let encoded = try configuration.encoded()
        let written = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(encoded)) as? [String: Any])
        XCTAssertEqual(NSDictionary(dictionary: written), NSDictionary(dictionary: file))
        XCTAssertEqual(try NodeConfiguration.decode(encoded, relativeTo: "/elsewhere"), configuration)

        let defaults = try parse(valid)
        XCTAssertEqual(try NodeConfiguration.decode(try defaults.encoded(), relativeTo: "/elsewhere"), defaults)
    }

    func test_serve_refusesABadConfig_withAMessageNamingTheField() throws {
        let directory = TemporaryDirectory()
        var object = valid
        object["http"] = ["address": "127.0.0.1:7100", "body_bytes_max": "large"]
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: directory.file("config.json")))
        let result = try Binary.run(["serve", "--config", directory.file("config.json")])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("http.body_bytes_max"), result.stderr)

        let federation = try FederationFixture(regions: ["eu"])
        try "\(Base64Text.random32())\n".write(toFile: federation.directory.file("master.key"), atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(federation.directory.file("master.key"), 0o600), 0)
        let refused = try Binary.run(["serve", "--config", federation.configPath("eu-1")])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("master key does not open this keyring"), refused.stderr)
    }
}

/// Key files and database files: private to the node's user.
final class FilePermissionE2ETests: XCTestCase {
    func test_serve_refusesKeyFilesReadableByOthers_namingFileAndMode() throws {
        let federation = try FederationFixture(regions: ["eu"])
        let keyring = federation.directory.file("eu-1/eu-1.keyring")
        let master = federation.directory.file("master.key")  // the config names it as eu-1/../master.key
        XCTAssertEqual(chmod(keyring, 0o644), 0)
        let looseKeyring = try Binary.run(["serve", "--config", federation.configPath("eu-1")])
        XCTAssertEqual(looseKeyring.status, 1)
        XCTAssertTrue(looseKeyring.stderr.contains("permissions 0644 for '\(keyring)' are too open"), looseKeyring.stderr)

        XCTAssertEqual(chmod(keyring, 0o600), 0)
        XCTAssertEqual(chmod(master, 0o640), 0)
        let looseMaster = try Binary.run(["serve", "--config", federation.configPath("eu-1")])
        XCTAssertEqual(looseMaster.status, 1)
        XCTAssertTrue(looseMaster.stderr.contains("permissions 0640 for '"), looseMaster.stderr)
        XCTAssertTrue(looseMaster.stderr.contains("master.key' are too open"), looseMaster.stderr)
    }

    func test_node_createsItsDataDirectory0700_andDatabaseFiles0600() async throws {
        let federation = try FederationFixture(regions: ["eu"])
        let node = try federation.start("eu-1")
        defer { node.kill() }
        let registered = try await node.call("POST", "/v1/subjects", token: federation.token("ingest"),
                                             json: #"{"identifier":{"kind":"email","value":"modes@example.com"},"country":"DE"}"#)
        XCTAssertEqual(registered.status, 201, registered.text)
        func mode(_ path: String) -> mode_t {
            var info = stat()
            XCTAssertEqual(stat(path, &info), 0, path)
            return info.st_mode & 0o777
        }
        let data = federation.dataDirectory("eu-1")
        XCTAssertEqual(mode(data), 0o700)
        for file in ["node.sqlite", "node.sqlite-wal", "node.sqlite-shm"] {
            XCTAssertEqual(mode((data as NSString).appendingPathComponent(file)), 0o600, file)
        }
        for file in ["master.key", "tokens.json", "eu-1/eu-1.keyring"] {
            XCTAssertEqual(mode(federation.directory.file(file)), 0o600, file)
        }
    }
}

enum Base64Text {
    static func random32() -> String {
        Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }
}
