import DomicileCrypto
import DomicileModel
import DomicileStorage
import Foundation

struct DemoCommand: Command {
    static let path = ["demo"]
    static let summary = "run the demo: keys for a node, then a storage self-check"
    static let help = """
        [--dir DIR]

        Creates an ephemeral master key and a sealed keyring in DIR (default: a new temporary
        directory), lists its keys, pseudonymizes a sample identifier, and runs `storage check`.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-demo-\(UUID().uuidString)").path
        try arguments.finish()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

        let master = try MasterKey(base64: MasterKey.generateBase64())
        let keyringPath = (directory as NSString).appendingPathComponent("eu-1.keyring")
        let keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: unixNow())
        try KeyringFile.save(keyring, path: keyringPath, master: master, replacing: true)
        let reopened = try KeyringFile.load(path: keyringPath, master: master)
        Output.line("keyring for node \(reopened.node) (region \(reopened.region)) sealed at \(keyringPath):")
        for kind in KeyKind.allCases {
            Output.line("  \(kind.name.padding(toLength: 18, withPad: " ", startingAt: 0)) v\(try reopened.primary(kind).version)  (\(kind.scope.rawValue))")
        }
        let identifier = try Identifier(kind: .email, raw: "  Alice.Example@Example.COM ")
        let pid = try reopened.pseudonymizers().current.pid(for: identifier)
        Output.line("pseudonym of a sample e-mail address: \(pid)")
        Output.line("")
        var check = Arguments(["--data-dir", directory])
        try await StorageCheckCommand.run(&check)
    }
}
