import DomicileModel
import DomicileNode
import DomicileTestSupport
import Foundation
import XCTest

/// docs/openapi.yaml lists exactly the routes the node serves.
final class OpenAPITests: XCTestCase {
    func test_openAPISpec_matchesTheRouter() async throws {
        let federation = try FederationFixture(regions: ["eu"])
        let configuration = try NodeConfiguration.load(path: federation.configPath("eu-1"))
        let quiet = open("/dev/null", O_WRONLY)
        defer { close(quiet) }
        let node = try await Node.start(configuration, logger: Logger(clock: SystemClock(), descriptor: quiet))
        let served = Set(node.routes.map { "\($0.method) \($0.pattern)" })
        await node.shutdown(graceMilliseconds: 1_000)

        let specPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml").path
        let documented = Set(try Self.operations(inSpec: String(contentsOfFile: specPath, encoding: .utf8)))
        XCTAssertGreaterThan(served.count, 10)
        XCTAssertEqual(served.subtracting(documented).sorted(), [], "served but not in docs/openapi.yaml")
        XCTAssertEqual(documented.subtracting(served).sorted(), [], "in docs/openapi.yaml but not served")
    }

    /// "METHOD /path" for each operation under `paths:` (two-space path keys,
    /// four-space method keys, as the file is written).
    static func operations(inSpec text: String) -> [String] {
        var operations: [String] = []
        var inPaths = false
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if !line.hasPrefix(" ") && !line.isEmpty { break }
            if line.hasPrefix("  /"), !line.hasPrefix("   "), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     ") {
                let key = line.dropFirst(4).prefix { $0 != ":" }
                if ["get", "put", "post", "delete", "patch"].contains(key) { operations.append("\(key.uppercased()) \(path)") }
            }
        }
        return operations
    }
}
