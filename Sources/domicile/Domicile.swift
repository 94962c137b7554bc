import DomicileNet
import Foundation

@main
enum Domicile {
    /// Every command, in the order `domicile --help` lists them.
    static let commands: [any Command.Type] = [
        VersionCommand.self,
        DemoCommand.self,
        ServeCommand.self,
        ClusterInitCommand.self,
        ClusterAddNodeCommand.self,
        ClusterJoinCommand.self,
        ClusterRemoveNodeCommand.self,
        ClusterRecoverCommand.self,
        KeysInitCommand.self,
        KeysRotateCommand.self,
        KeysListCommand.self,
        KeysExportPublicCommand.self,
        KeysGenerateMasterKeyCommand.self,
        PolicyCheckCommand.self,
        AuditVerifyCommand.self,
        ErasureVerifyCommand.self,
        ScanCommand.self,
        ScanVerifyCommand.self,
        TokenGenerateCommand.self,
        StorageCheckCommand.self,
        StorageLoadCommand.self,
        StorageRaftLoadCommand.self,
        BenchCryptoCommand.self,
        BenchStorageCommand.self,
        BenchRaftLogCommand.self,
        BenchRegionCommand.self,
        BenchFederationCommand.self,
        BenchSearchCommand.self,
        BenchHTTPCommand.self,
        BenchNodeCommand.self,
        BenchLoadCommand.self,
        BenchRestartCommand.self,
        BenchErasureCommand.self,
        BenchGossipCommand.self,
        SimulateRegionLogCommand.self,
        SimulateFederationCommand.self,
        BenchChannelCommand.self,
        BenchVectorsCommand.self,
        BenchPlannerCommand.self,
        BenchFederatedUtilityCommand.self,
        BenchKernelsCommand.self,
        BenchPrivacyCommand.self,
        BenchChangesetCommand.self,
        BenchSnapshotCommand.self,
        PrivacyRDPCommand.self,
        PrivacyGaussianCommand.self,
    ]

    static func main() async {
        OpenSSLLibrary.keepStateUntilExit()
        let words = Array(CommandLine.arguments.dropFirst())
        if words.isEmpty || words == ["--help"] || words == ["-h"] || words == ["help"] {
            Output.line(topLevelHelp())
            exit(words.isEmpty ? 2 : 0)
        }
        guard let (command, rest) = resolve(words) else {
            if let help = groupHelp(words) {
                Output.line(help)
                exit(0)
            }
            reportUnknown(words)
            exit(2)
        }
        var arguments = Arguments(rest)
        if arguments.wantsHelp {
            Output.line("\(command.summary)\n\n\(command.usageLine)")
            exit(0)
        }
        do {
            try await command.run(&arguments)
            exit(0)
        } catch let error as CLIError {
            Output.error(error.description)
            if error.isUsage {
                Output.error("run 'domicile \(command.path.joined(separator: " ")) --help' for usage")
                exit(2)
            }
            exit(1)
        } catch {
            Output.error("\(error)")
            exit(1)
        }
    }

    static func topLevelHelp() -> String {
        var lines = ["domicile — a region-sharded, privacy-first store for CRM-backed personalization", "",
                     "usage: domicile <command> [options]   (domicile <command> --help for its options)", "",
                     "commands:"]
        for command in commands {
            let name = command.path.joined(separator: " ")
            lines.append("  " + name.padding(toLength: 28, withPad: " ", startingAt: 0) + command.summary)
        }
        lines.append("")
        lines.append("exit codes: 0 success, 1 the operation failed, 2 the command line is wrong")
        return lines.joined(separator: "\n")
    }

    /// `domicile GROUP --help` (or `-h`) for a group of commands such as
    /// `keys`: the group's commands and what each does; nil for anything else.
    static func groupHelp(_ words: [String]) -> String? {
        guard words.count == 2, ["--help", "-h"].contains(words[1]) else { return nil }
        let group = commands.filter { $0.path.count > 1 && $0.path.first == words[0] }
        guard !group.isEmpty else { return nil }
        var lines = ["usage: domicile \(words[0]) <command> [options]   (domicile \(words[0]) <command> --help for its options)", "",
                     "commands:"]
        for command in group {
            let name = command.path.joined(separator: " ")
            lines.append("  " + name.padding(toLength: 28, withPad: " ", startingAt: 0) + command.summary)
        }
        return lines.joined(separator: "\n")
    }

    /// The command whose path is the longest prefix of the arguments.
    static func resolve(_ words: [String]) -> (command: any Command.Type, rest: [String])? {
        let matches = commands.filter { words.starts(with: $0.path) }
        guard let best = matches.max(by: { $0.path.count < $1.path.count }) else { return nil }
        return (best, Array(words.dropFirst(best.path.count)))
    }

    static func reportUnknown(_ words: [String]) {
        let group = commands.filter { $0.path.first == words[0] }
        if group.isEmpty {
            Output.error("unknown command '\(words[0])'; run 'domicile --help' for the list")
            return
        }
        Output.error("'\(words.joined(separator: " "))' is not a command; try one of:")
        for command in group {
            Output.error("  domicile \(command.path.joined(separator: " ")) — \(command.summary)")
        }
    }
}

extension CLIError {
    var isUsage: Bool {
        if case .usage = self { return true }
        return false
    }
}
