import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// When `accept` fails for want of descriptors, the pending connection
/// keeps the listening socket readable: a level-triggered loop that simply
/// retries would spin a core. The server stops watching the listener until
/// its next tick instead, and accepts again once descriptors are back.
final class AcceptShortageTests: XCTestCase {
    func test_server_outOfDescriptors_doesNotSpin_andAcceptsAgainOnceTheyAreBack() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else {
            throw XCTSkip("prlimit (util-linux) is not installed: cannot lower a running node's descriptor limit")
        }
        let federation = try FederationFixture(regions: ["eu"])
        let node = try federation.start("eu-1")
        defer { node.kill() }
        let pid = node.process.pid
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        let original = try limit(of: pid)
        try setLimit(of: pid, to: "\(open + 2):\(original.hard)")
        // More connections than descriptors: they wait in the backlog, and accept fails with EMFILE.
        var connections = try (0..<16).map { _ in try RawConnection(port: node.address.port) }
        try await Task.sleep(for: .milliseconds(300))
        let before = try cpuTicks(of: pid)
        try await Task.sleep(for: .seconds(1))
        let spent = try cpuTicks(of: pid) - before
        // A spinning loop burns ~100 ticks a second per loop; an idle server a handful at most.
        XCTAssertLessThan(spent, 30, "the server spent \(spent) clock ticks in a second with connections it could not accept")

        connections.removeAll()
        try setLimit(of: pid, to: "\(original.soft):\(original.hard)")
        let health = try await node.call("GET", "/healthz", token: nil)
        XCTAssertEqual(health.status, 200, "the server accepts again once descriptors are back")
    }

    private func limit(of pid: pid_t) throws -> (soft: String, hard: String) {
        let text = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else {
            throw ShortageTestError.unexpected("no open-files line in /proc/\(pid)/limits")
        }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        return (String(fields[3]), String(fields[4]))
    }

    private func setLimit(of pid: pid_t, to value: String) throws {
        let result = try ChildProcess.run("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(value)"], captureStandardError: true)
        guard result.status == 0 else { throw ShortageTestError.unexpected("prlimit failed: \(result.output)") }
    }

    /// User and system time of the process, in clock ticks (/proc/PID/stat fields 14 and 15).
    private func cpuTicks(of pid: pid_t) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let afterName = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        // afterName[0] is field 3 (state): fields 14 and 15 are at 11 and 12.
        return Int(afterName[11])! + Int(afterName[12])!
    }
}

private enum ShortageTestError: Error {
    case unexpected(String)
}
