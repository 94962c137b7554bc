import Foundation
import XCTest

/// What tests of `domicile serve` processes share: the fixture they were
/// laid out by, the processes by node name (killed after each test), and a
/// bounded wait.
open class NodeProcessesTestCase: XCTestCase {
    public var federation: FederationFixture!
    public var nodes: [String: NodeProcess] = [:]

    override open func tearDown() {
        for node in nodes.values { node.kill() }
        nodes = [:]
        super.tearDown()
    }

    /// Polls `condition` every 100 ms for at most `seconds` (an error while
    /// polling counts as not yet); returns its last answer, or throws its
    /// last error.
    public func eventually(seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? await condition()) == true { return true }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        return try await condition()
    }
}
