import DomicileTestSupport
import Foundation
import XCTest

/// A node whose data directory is a small tmpfs that fills up: writes and
/// audited reads answer 507, `/readyz` says `disk_full`, every log line stays
/// JSON, and once space is freed the node writes again with nothing
/// acknowledged lost.
final class DiskFullTests: NodeTestCase {
    private var mountPoint: String?
    /// Holds the mount point; removed only after it is unmounted.
    private var scratch: TemporaryDirectory?

    override func tearDown() {
        node?.kill()
        node = nil
        if let mountPoint { _ = Self.run(["umount", "--lazy", mountPoint]) }
        scratch = nil
        super.tearDown()
    }

    private static func run(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Mounts a tmpfs of `megabytes` at `path`, or skips the test.
    private func mountSmallFileSystem(at path: String, megabytes: Int) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.run(["mount", "-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", path]) == 0 else {
            throw XCTSkip("mounting a tmpfs for the data directory is not permitted here (`mount -t tmpfs` failed); "
                          + "run as root (CAP_SYS_ADMIN) to test a full disk")
        }
        mountPoint = path
    }

    /// Writes zeros into `path` until the file system has no space left.
    private func fill(_ path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw XCTSkip("\(path): cannot create the filler file") }
        defer { close(descriptor) }
        let chunk = [UInt8](repeating: 0, count: 4_096)
        while chunk.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) > 0 {}
        XCTAssertEqual(errno, ENOSPC)
    }

    func test_fullDisk_answers507_readyzDiskFull_logsStayJSON_andRecovers() async throws {
        let scratch = TemporaryDirectory("domicile-disk")
        self.scratch = scratch
        let dataDirectory = scratch.file("data")
        try mountSmallFileSystem(at: dataDirectory, megabytes: 3)
        try startNode(regions: ["eu"]) { _, config in config["data_dir"] = dataDirectory }

        let pid = try await register(email: "before-full@example.com")
        let granted = try await receipt(pid, "grant", ["product_recs"])
        XCTAssertEqual(granted.status, 201, granted.text)

        let filler = (dataDirectory as NSString).appendingPathComponent("filler")
        try fill(filler)
        // The WAL may still have room in pages it already holds: write until
        // the disk refuses (a few writes at most).
        var refused: NodeProcess.Response?
        for index in 0..<500 {
            let response = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                               json: #"{"identifier":{"kind":"email","value":"full-\#(index)@example.com"},"country":"DE"}"#)
            if response.status != 201 {
                refused = response
                break
            }
        }
        let full = try XCTUnwrap(refused, "the node never reported the full disk")
        assertProblem(full, 507, "insufficient_storage")

        // A read must be audited before it answers: refused the same way.
        let read = try await node.call("GET", "/v1/subjects/\(pid)/consent", token: token("serve"))
        assertProblem(read, 507, "insufficient_storage")
        let notReady = try await node.call("GET", "/readyz", token: nil)
        XCTAssertEqual(notReady.status, 503, notReady.text)
        XCTAssertEqual(notReady.json["reason"] as? String, "disk_full", notReady.text)

        try FileManager.default.removeItem(atPath: filler)
        let after = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                        json: #"{"identifier":{"kind":"email","value":"after-full@example.com"},"country":"DE"}"#)
        XCTAssertEqual(after.status, 201, after.text)
        let ready = try await node.call("GET", "/readyz", token: nil)
        XCTAssertEqual(ready.status, 200, ready.text)
        let purposesAfterFreeing = try await activePurposes(pid)
        XCTAssertEqual(purposesAfterFreeing, ["product_recs"])

        // Acknowledged data also survives a restart on the same directory.
        node.stop()
        let firstRun = node.logLines
        node = try federation.start("eu-1")
        let purposesAfterRestart = try await activePurposes(pid)
        XCTAssertEqual(purposesAfterRestart, ["product_recs"])

        let errors = (try? String(contentsOfFile: federation.directory.file("eu-1/stderr.log"), encoding: .utf8)) ?? ""
        let lines = firstRun + node.logLines + errors.split(separator: "\n").map(String.init)
        XCTAssertTrue(firstRun.contains { $0.contains(#""event":"disk full""#) }, "the full disk is not in the log")
        XCTAssertFalse(lines.isEmpty)
        for line in lines where !line.isEmpty {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertNotNil(object, "a log line is not a JSON object: \(line)")
        }
    }
}
