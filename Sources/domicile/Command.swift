import Foundation

/// A `domicile` subcommand. Every command answers `--help` with its usage.
protocol Command: Sendable {
    /// Words after `domicile`, e.g. `["keys", "init"]`.
    static var path: [String] { get }
    static var summary: String { get }
    /// Usage text shown by `--help`, after the `usage:` line.
    static var help: String { get }
    static func run(_ arguments: inout Arguments) async throws
}

extension Command {
    static var usageLine: String { "usage: domicile \(path.joined(separator: " ")) \(help)" }
}

enum Output {
    /// Unbuffered write to standard output: lines reach a pipe reader (a test
    /// harness) before the process can be killed.
    static func line(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { utf8 in
            var offset = 0
            while offset < utf8.count {
                let written = write(STDOUT_FILENO, utf8.baseAddress! + offset, utf8.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data(("domicile: " + text + "\n").utf8))
    }
}
