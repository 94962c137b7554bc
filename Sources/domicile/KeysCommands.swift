import DomicileCrypto
import DomicileModel
import DomicileStorage
import Foundation

/// Options shared by the keys commands: where the keyring is and what opens it.
struct KeyringOptions {
    let path: String
    let masterKey: MasterKeySource

    static let help = "--keyring PATH [--master-key-file PATH]"
    static let masterKeyHelp = """
        The master key comes from --master-key-file, or else from the environment variable
        DOMICILE_MASTER_KEY (base64 of 32 bytes; `domicile keys generate-master-key` prints one).
        """

    init(_ arguments: inout Arguments) throws {
        path = try arguments.required("keyring")
        masterKey = try arguments.option("master-key-file").map { .file(path: $0) } ?? .environment
    }

    func load() throws -> (Keyring, MasterKey) {
        let master = try masterKey.load()
        return (try KeyringFile.load(path: path, master: master), master)
    }
}

func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

func formatTimestamp(_ seconds: Int64) -> String {
    Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(.iso8601)
}

struct KeysInitCommand: Command {
    static let path = ["keys", "init"]
    static let summary = "create a node's sealed keyring"
    static let help = """
        \(KeyringOptions.help) --region REGION --node NAME [--inherit PATH] [--force]

        Creates version 1 of every key kind. With --inherit, the federation keys are copied from
        another node's keyring, and its region keys and subject bucket keys too when it is in the
        same region; the node's signing key is always new. Refuses to replace an existing file without --force.

        \(KeyringOptions.masterKeyHelp)
        """

    static func run(_ arguments: inout Arguments) async throws {
        let options = try KeyringOptions(&arguments)
        let region: RegionID
        let node: NodeName
        do {
            region = try RegionID(try arguments.required("region"))
            node = try NodeName(try arguments.required("node"))
        } catch let error as ModelError {
            throw CLIError.usage(error.description)
        }
        let inherit = try arguments.option("inherit")
        let force = arguments.flag("force")
        try arguments.finish()

        let master = try options.masterKey.load()
        let source = try inherit.map { try KeyringFile.load(path: $0, master: master) }
        let keyring = Keyring.generate(region: region, node: node, createdAt: unixNow(), inheriting: source)
        let lock = try KeyringLock(keyringPath: options.path)
        try KeyringFile.save(keyring, path: options.path, master: master, replacing: force)
        lock.release()
        let shared = source.map { source in source.region == region ? " (region and federation keys from \(source.node))"
                                                                    : " (federation keys from \(source.node))" } ?? ""
        Output.line("created keyring for node \(node) in region \(region) at \(options.path)\(shared)")
    }
}

struct KeysRotateCommand: Command {
    static let path = ["keys", "rotate"]
    static let summary = "add a new primary version of one kind of key"
    static let help = """
        \(KeyringOptions.help) --kind KIND

        KIND is one of: \(KeyKind.allCases.map(\.name).joined(separator: ", ")).
        Older versions stay installed so what they protect remains readable. Region and
        federation keys must then be distributed to the other nodes that share them.

        \(KeyringOptions.masterKeyHelp)
        """

    static func run(_ arguments: inout Arguments) async throws {
        let options = try KeyringOptions(&arguments)
        let kindName = try arguments.required("kind")
        try arguments.finish()
        guard let kind = KeyKind(name: kindName) else {
            throw CLIError.usage("unknown key kind '\(kindName)'; expected one of \(KeyKind.allCases.map(\.name).joined(separator: ", "))")
        }
        let lock = try KeyringLock(keyringPath: options.path)
        defer { lock.release() }
        var (keyring, master) = try options.load()
        let entry = keyring.rotate(kind, createdAt: unixNow())
        try KeyringFile.save(keyring, path: options.path, master: master, replacing: true)
        Output.line("\(kind) key rotated: version \(entry.version) is now primary")
    }
}

struct KeysListCommand: Command {
    static let path = ["keys", "list"]
    static let summary = "list key kinds and versions (never key bytes)"
    static let help = """
        \(KeyringOptions.help)

        \(KeyringOptions.masterKeyHelp)
        """

    static func run(_ arguments: inout Arguments) async throws {
        let options = try KeyringOptions(&arguments)
        try arguments.finish()
        let (keyring, _) = try options.load()
        Output.line("node \(keyring.node), region \(keyring.region)")
        Output.line("KIND                VERSION  SCOPE       CREATED               STATUS")
        for kind in KeyKind.allCases {
            for (index, entry) in keyring.versions(of: kind).enumerated() {
                let columns = [kind.name.padding(toLength: 20, withPad: " ", startingAt: 0),
                               String(entry.version).padding(toLength: 9, withPad: " ", startingAt: 0),
                               kind.scope.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0),
                               formatTimestamp(entry.createdAt).padding(toLength: 22, withPad: " ", startingAt: 0),
                               index == 0 ? "primary" : "readable"]
                Output.line(columns.joined())
            }
        }
        Output.line("subject-key buckets: \(keyring.buckets.count) (region scope), \(keyring.buckets.retired.count) retired version(s) "
                    + "awaiting destruction")
    }
}

struct KeysExportPublicCommand: Command {
    static let path = ["keys", "export-public"]
    static let summary = "print the node's public signing keys as JSON"
    static let help = """
        \(KeyringOptions.help)

        Prints {"node","region","signing_keys":[{"version","public_key"}]} with base64 keys, for
        verifying erasure certificates offline.

        \(KeyringOptions.masterKeyHelp)
        """

    struct PublicKeys: Encodable {
        struct SigningKey: Encodable {
            let version: UInt32
            let publicKey: String

            enum CodingKeys: String, CodingKey {
                case version
                case publicKey = "public_key"
            }
        }

        let node: String
        let region: String
        let signingKeys: [SigningKey]

        enum CodingKeys: String, CodingKey {
            case node, region
            case signingKeys = "signing_keys"
        }
    }

    static func run(_ arguments: inout Arguments) async throws {
        let options = try KeyringOptions(&arguments)
        try arguments.finish()
        let (keyring, _) = try options.load()
        let keys = try keyring.versions(of: .nodeSigning).map { entry in
            PublicKeys.SigningKey(version: entry.version,
                                  publicKey: Base64.encode(try Ed25519PrivateKey(seed: entry.material).publicKey.rawRepresentation))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(PublicKeys(node: keyring.node.rawValue, region: keyring.region.rawValue, signingKeys: keys))
        Output.line(String(decoding: json, as: UTF8.self))
    }
}

struct KeysGenerateMasterKeyCommand: Command {
    static let path = ["keys", "generate-master-key"]
    static let summary = "print a new random master key (base64)"
    static let help = """


        Keep it outside the data directory: export it as DOMICILE_MASTER_KEY or store it in a
        file readable only by the node's user and pass --master-key-file.
        """

    static func run(_ arguments: inout Arguments) async throws {
        try arguments.finish()
        Output.line(MasterKey.generateBase64())
    }
}
