import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// Secrets are refused when group or others may read them; database files
/// are created readable by their owner only.
final class FilePermissionTests: XCTestCase {
    let directory = TemporaryDirectory()

    private func mode(_ path: String) -> mode_t {
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0, path)
        return info.st_mode & 0o777
    }

    func test_database_createsItsFilesWithMode0600_andNarrowsOlderOnes() throws {
        let path = directory.file("a.sqlite")
        let database = try Database(path: path)
        try database.executeScript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        for file in [path, path + "-wal", path + "-shm"] {
            XCTAssertEqual(mode(file), 0o600, file)
        }

        let older = directory.file("older.sqlite")
        XCTAssertTrue(FileManager.default.createFile(atPath: older, contents: nil, attributes: [.posixPermissions: 0o644]))
        XCTAssertEqual(mode(older), 0o644)
        _ = try Database(path: older)
        XCTAssertEqual(mode(older), 0o600)
    }

    func test_secrets_readableByGroupOrOthers_areRefused_namingFileAndMode() throws {
        let master = MasterKey.generateBase64()
        let keyFile = directory.file("master.key")
        try FileIO.writeAtomically(Array(master.utf8), to: keyFile, mode: 0o600, replacing: false)
        XCTAssertNoThrow(try MasterKeySource.file(path: keyFile).load())

        for loose: mode_t in [0o644, 0o640, 0o604, 0o660] {
            XCTAssertEqual(chmod(keyFile, loose), 0)
            XCTAssertThrowsError(try MasterKeySource.file(path: keyFile).load()) { error in
                XCTAssertEqual("\(error)".contains("permissions 0\(String(loose, radix: 8)) for '\(keyFile)' are too open"), true, "\(error)")
            }
        }

        let key = try MasterKey(base64: master)
        let keyringPath = directory.file("eu-1.keyring")
        let keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 0, inheriting: nil)
        try KeyringFile.save(keyring, path: keyringPath, master: key, replacing: false)
        XCTAssertEqual(mode(keyringPath), 0o600)
        XCTAssertNoThrow(try KeyringFile.load(path: keyringPath, master: key))
        XCTAssertEqual(chmod(keyringPath, 0o644), 0)
        XCTAssertThrowsError(try KeyringFile.load(path: keyringPath, master: key)) { error in
            XCTAssertTrue("\(error)".contains("permissions 0644 for '\(keyringPath)' are too open"), "\(error)")
        }
    }
}
