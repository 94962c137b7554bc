/// Command-line arguments of one command: `--name value`, `--name=value`,
/// bare `--flag`s and positionals. Whatever a command does not consume is
/// an error, so a typo never silently falls back to a default.
struct Arguments {
    private var tokens: [String]

    init(_ tokens: [String]) { self.tokens = tokens }

    var wantsHelp: Bool { tokens.contains("--help") || tokens.contains("-h") }

    /// The value of `--name`, if given.
    mutating func option(_ name: String) throws(CLIError) -> String? {
        let flag = "--\(name)"
        for (index, token) in tokens.enumerated() {
            if token == flag {
                guard index + 1 < tokens.count, !tokens[index + 1].hasPrefix("--") else {
                    throw .usage("\(flag) needs a value")
                }
                let value = tokens[index + 1]
                tokens.removeSubrange(index...(index + 1))
                return value
            }
            if token.hasPrefix(flag + "=") {
                tokens.remove(at: index)
                return String(token.dropFirst(flag.count + 1))
            }
        }
        return nil
    }

    mutating func required(_ name: String) throws(CLIError) -> String {
        guard let value = try option(name) else { throw .usage("--\(name) is required") }
        return value
    }

    mutating func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws(CLIError) -> Int {
        guard let text = try option(name) else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw .usage("--\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    mutating func flag(_ name: String) -> Bool {
        guard let index = tokens.firstIndex(of: "--\(name)") else { return false }
        tokens.remove(at: index)
        return true
    }

    mutating func positional() -> String? {
        guard let index = tokens.firstIndex(where: { !$0.hasPrefix("--") }) else { return nil }
        return tokens.remove(at: index)
    }

    func finish() throws(CLIError) {
        if let extra = tokens.first { throw .usage("unexpected argument '\(extra)'") }
    }
}

enum CLIError: Error, CustomStringConvertible {
    /// The command line is wrong: exit 2 and point at --help.
    case usage(String)
    /// The operation failed: exit 1.
    case failed(String)

    var description: String {
        switch self {
        case .usage(let message), .failed(let message): return message
        }
    }
}
