import DomicileNode
import DomicileTestSupport
import Foundation
import XCTest

final class ConfigurationTests: XCTestCase {
    let valid: [String: Any] = [
        "node": "eu-1", "region": "eu", "data_dir": "data", "keyring": "k.keyring", "policy": "policy.json",
        "principals": "principals.json", "http": ["address": "127.0.0.1:7100"],
    ]

    func parse(_ object: [String: Any]) throws -> NodeConfiguration {
        try NodeConfiguration.parse(Array(try JSONSerialization.data(withJSONObject: object)), relativeTo: "/etc/domicile")
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
