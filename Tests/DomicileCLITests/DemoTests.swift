import DomicileTestSupport
import XCTest

/// The README's main job must keep working: run it as a user would.
final class DemoTests: XCTestCase {
    func test_demo_runsTheFederationWorkload_andCleansUp() throws {
        let directory = TemporaryDirectory("domicile-demo-test")
        let result = try Binary.run(["demo", "--dir", directory.file("run")])
        XCTAssertEqual(result.status, 0, result.stderr)
        for expected in ["every node sees six alive members", "eu-1 answers 421, home region us", "Bo: active consent analytics",
                         "unknown_purpose", "all five others declared us-2 dead", "us-2 restarted with a new boot id and rejoined",
                         "eu-1: chain valid", "certificate against the nodes' public keys: valid and complete", "eu-2 (scope node) erased"] {
            XCTAssertTrue(result.stdout.contains(expected), "demo output lacks '\(expected)':\n\(result.stdout)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("run")), "the demo removes its directory unless --keep")
        XCTAssertFalse(result.stdout.contains("anna.schmidt@example.de"), "the demo prints pids, not identifiers")
    }
}
