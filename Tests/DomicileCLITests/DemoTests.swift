import DomicileTestSupport
import XCTest

/// The README's main job must keep working: run it as a user would.
final class DemoTests: XCTestCase {
    func test_demo_runsTheFederationWorkload_killsEusLeader_andCleansUp() throws {
        let directory = TemporaryDirectory("domicile-demo-test")
        let result = try Binary.run(["demo", "--dir", directory.file("run")])
        XCTAssertEqual(result.status, 0, result.stderr)
        for expected in ["every node sees nine alive members", "eu-1 answers 421, home region us", "Bo registered on us-1",
                         "Bo: active consent analytics   (granted on us-2, read on us-3", "unknown_purpose",
                         "16 vectors stored, 8 refused", "searched again on eu-1: out of the index before the revoke returned",
                         "all eight others declared us-2 dead", "us-2 restarted with a new boot id and rejoined",
                         "eu-1: chain valid", "certificate against the nodes' public keys: valid and complete",
                         "on all nine nodes after", "br pending, eu erased, us erased; waiting for br", "with acks of br, eu, us",
                         "from replicas: br", "of 6 noised (replica", "of 6 noised (remote"] {
            XCTAssertTrue(result.stdout.contains(expected), "demo output lacks '\(expected)':\n\(result.stdout)")
        }
        // One ack per region, each signed by whichever node leads it once every node of the region confirmed.
        let acks = lines(of: result.stdout, containing: "(scope region) erased:").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(acks.count, 3, result.stdout)
        for region in ["eu", "us", "br"] {
            XCTAssertEqual(acks.filter { $0.hasPrefix("\(region)-") }.count, 1, "one ack of \(region):\n\(result.stdout)")
        }
        try assertLeaderKill(result.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("run")), "the demo removes its directory unless --keep")
        XCTAssertFalse(result.stdout.contains("anna.schmidt@example.de"), "the demo prints pids, not identifiers")
    }

    /// The leader-kill step, whichever node leads eu and however long the election takes.
    private func assertLeaderKill(_ output: String) throws {
        let killed = try XCTUnwrap(word(in: output, after: "acknowledged writes, SIGKILL "), output)
        let successor = try XCTUnwrap(word(in: output, after: "new leader "), output)
        XCTAssertTrue(["eu-1", "eu-2", "eu-3"].contains(killed), output)
        XCTAssertTrue(["eu-1", "eu-2", "eu-3"].contains(successor), output)
        XCTAssertNotEqual(killed, successor, "a node other than the killed leader took the writes:\n\(output)")
        XCTAssertGreaterThan(Int(word(in: output, after: "round-robin on eu-1, eu-2, eu-3; after ") ?? "") ?? 0, 0,
                             "the load was acknowledged before the kill:\n\(output)")
        XCTAssertTrue(output.contains("acknowledged the first write sent after the kill"), output)
        XCTAssertTrue(output.contains("\(killed) restarted and applied the log up to the leader's commit index"), output)
        let readBack = try XCTUnwrap(lines(of: output, containing: "nothing acknowledged was lost: ").first, output)
        let counts = readBack.components(separatedBy: "lost: ")[1].components(separatedBy: " writes")[0].components(separatedBy: " of ")
        XCTAssertEqual(counts.count, 2, readBack)
        XCTAssertEqual(counts.first, counts.last, readBack)
        XCTAssertTrue(readBack.hasSuffix("read back on eu-1, eu-2, eu-3"), readBack)
        XCTAssertTrue(output.contains("audit heads agree: each node's own database holds a valid chain"), output)
        XCTAssertTrue(output.contains("the head GET /v1/audit/verify answers through each of them"), output)
    }

    private func lines(of text: String, containing fragment: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.contains(fragment) }
    }

    /// The word right after `marker` (a node name, a count).
    private func word(in text: String, after marker: String) -> String? {
        guard let range = text.range(of: marker) else { return nil }
        return String(text[range.upperBound...].prefix { $0 != " " && $0 != "," && $0 != "\n" })
    }
}
