enum DomicileVersion {
    static let current = "0.1.0"
}

struct VersionCommand: Command {
    static let path = ["version"]
    static let summary = "print the version"
    static let help = ""

    static func run(_ arguments: inout Arguments) async throws {
        try arguments.finish()
        Output.line("domicile \(DomicileVersion.current)")
    }
}
