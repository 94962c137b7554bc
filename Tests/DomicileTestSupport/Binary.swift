import DomicileNet
import Foundation

/// The `domicile` executable built beside this test bundle.
public enum Binary {
    public static let path: String = {
        let testExecutable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: testExecutable).deletingLastPathComponent()
        // On Linux the test runner is `<build dir>/DomicilePackageTests.xctest`.
        if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
        return directory.appendingPathComponent("domicile").path
    }()

    /// Runs `domicile` with `arguments` to completion.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let directory = TemporaryDirectory("domicile-run")
        let errorPath = directory.file("stderr")
        var merged = ProcessInfo.processInfo.environment
        merged.removeValue(forKey: "DOMICILE_MASTER_KEY")
        environment.forEach { merged[$0.key] = $0.value }
        let process = try RunningProcess(path, arguments, environment: merged, stderrPath: errorPath)
        let status = process.wait()
        let stderr = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        return (status, process.output.joined(separator: "\n"), stderr)
    }
}
