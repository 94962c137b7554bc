import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import XCTest

final class KeysCommandTests: XCTestCase {
    let directory = TemporaryDirectory()
    let master = MasterKey.generateBase64()

    var environment: [String: String] { ["DOMICILE_MASTER_KEY": master] }

    func test_keys_initListRotateExport() throws {
        let keyring = directory.file("eu-1.keyring")
        let created = try Binary.run(["keys", "init", "--keyring", keyring, "--region", "eu", "--node", "eu-1"], environment: environment)
        XCTAssertEqual(created.status, 0, created.stderr)

        let rotated = try Binary.run(["keys", "rotate", "--keyring", keyring, "--kind", "pseudonym"], environment: environment)
        XCTAssertEqual(rotated.status, 0, rotated.stderr)
        XCTAssertTrue(rotated.stdout.contains("version 2"))

        let listed = try Binary.run(["keys", "list", "--keyring", keyring], environment: environment)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("pseudonym           2"))
        XCTAssertTrue(listed.stdout.contains("readable"))

        // The listing never shows key bytes, in any common encoding.
        let opened = try KeyringFile.load(path: keyring, master: try MasterKey(base64: master))
        for entry in opened.entries {
            let bytes = entry.material.bytesForSealing
            XCTAssertFalse(listed.stdout.contains(Hex.encode(bytes.prefix(6))))
            XCTAssertFalse(listed.stdout.contains(String(Base64.encode(bytes).prefix(8))))
        }

        let exported = try Binary.run(["keys", "export-public", "--keyring", keyring], environment: environment)
        XCTAssertEqual(exported.status, 0, exported.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(exported.stdout.utf8)) as? [String: Any]
        let keys = json?["signing_keys"] as? [[String: Any]]
        let publicKey = (keys?.first?["public_key"] as? String).flatMap(Base64.decode)
        XCTAssertEqual(publicKey, try opened.signingKey().publicKey.rawRepresentation)
    }

    func test_keys_refuseAWrongMasterKeyWithAClearMessage() throws {
        let keyring = directory.file("k.keyring")
        XCTAssertEqual(try Binary.run(["keys", "init", "--keyring", keyring, "--region", "us", "--node", "us-1"],
                                      environment: environment).status, 0)
        let wrong = try Binary.run(["keys", "list", "--keyring", keyring],
                                   environment: ["DOMICILE_MASTER_KEY": MasterKey.generateBase64()])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("master key does not open this keyring"), wrong.stderr)

        let missing = try Binary.run(["keys", "list", "--keyring", keyring])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("DOMICILE_MASTER_KEY"), missing.stderr)

        let keyFile = directory.file("master.key")
        try (master + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        let loose = try Binary.run(["keys", "list", "--keyring", keyring, "--master-key-file", keyFile])
        XCTAssertEqual(loose.status, 1, "a master key file readable by others is refused")
        XCTAssertTrue(loose.stderr.contains("permissions 0644 for '\(keyFile)' are too open"), loose.stderr)
        XCTAssertEqual(chmod(keyFile, 0o600), 0)
        XCTAssertEqual(try Binary.run(["keys", "list", "--keyring", keyring, "--master-key-file", keyFile]).status, 0)
    }

    func test_keys_initRefusesToOverwrite_andInheritsSharedKeys() throws {
        let first = directory.file("eu-1.keyring")
        let second = directory.file("eu-2.keyring")
        XCTAssertEqual(try Binary.run(["keys", "init", "--keyring", first, "--region", "eu", "--node", "eu-1"], environment: environment).status, 0)
        let again = try Binary.run(["keys", "init", "--keyring", first, "--region", "eu", "--node", "eu-1"], environment: environment)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("--force"))
        XCTAssertEqual(try Binary.run(["keys", "init", "--keyring", second, "--region", "eu", "--node", "eu-2", "--inherit", first],
                                      environment: environment).status, 0)
        let key = try MasterKey(base64: master)
        let a = try KeyringFile.load(path: first, master: key)
        let b = try KeyringFile.load(path: second, master: key)
        XCTAssertEqual(try a.primary(.pseudonym).material.bytesForSealing, try b.primary(.pseudonym).material.bytesForSealing)
        XCTAssertNotEqual(try a.primary(.nodeSigning).material.bytesForSealing, try b.primary(.nodeSigning).material.bytesForSealing)
    }

    func test_cli_usageErrorsExitTwo_andEveryCommandHasHelp() throws {
        XCTAssertEqual(try Binary.run(["keys", "init", "--region", "eu"]).status, 2)
        XCTAssertEqual(try Binary.run(["keys", "init", "--keyring", "x", "--region", "EU!", "--node", "a"], environment: environment).status, 2)
        XCTAssertEqual(try Binary.run(["keys", "rotate", "--keyring", "x", "--kind", "nope"], environment: environment).status, 2)
        XCTAssertEqual(try Binary.run(["nonsense"]).status, 2)
        XCTAssertEqual(try Binary.run(["keys"]).status, 2)
        XCTAssertEqual(try Binary.run(["keys", "nonsense", "--help"]).status, 2)
        XCTAssertEqual(try Binary.run(["version", "--extra"]).status, 2)

        let help = try Binary.run(["--help"])
        XCTAssertEqual(help.status, 0)
        let commands = help.stdout.split(separator: "\n").filter { $0.hasPrefix("  ") }
            .map { $0.trimmingCharacters(in: .whitespaces).components(separatedBy: "  ")[0] }
        XCTAssertGreaterThan(commands.count, 8)
        for command in commands {
            let result = try Binary.run(command.split(separator: " ").map(String.init) + ["--help"])
            XCTAssertEqual(result.status, 0, command)
            XCTAssertTrue(result.stdout.contains("usage: domicile \(command)"), command)
        }
    }

    /// `domicile GROUP --help` lists the group's commands and exits 0, for every group.
    func test_cli_everyCommandGroupHasHelp() throws {
        let groups = ["keys", "cluster", "erasure", "bench", "privacy", "storage", "policy", "audit", "token"]
        for group in groups {
            for flag in ["--help", "-h"] {
                let result = try Binary.run([group, flag])
                XCTAssertEqual(result.status, 0, "\(group) \(flag): \(result.stderr)")
                XCTAssertTrue(result.stdout.contains("usage: domicile \(group) <command>"), result.stdout)
            }
        }
        let keys = try Binary.run(["keys", "--help"]).stdout
        for command in ["keys init", "keys rotate", "keys list", "keys export-public", "keys generate-master-key"] {
            XCTAssertTrue(keys.contains(command), keys)
        }
    }
}
