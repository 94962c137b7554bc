import DomicileCrypto
import DomicileModel
import DomicileNode
import DomicilePrivacy
import DomicileStorage
import Foundation

struct ServeCommand: Command {
    static let path = ["serve"]
    static let summary = "run a region node"
    static let help = """
        --config PATH

        Starts a node as described by its configuration file (docs/CONFIGURATION.md): opens the
        data directory, unseals the keyring, loads the policy and principals, and serves the
        HTTP API. Logs are JSON lines on standard output. SIGTERM or SIGINT stop it gracefully;
        SIGHUP reloads the TLS files for new connections: the certificate and key (tls.cert_file,
        tls.key_file) the node presents, and the CA (tls.ca_file) it trusts in its peers' certificates.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let path = try arguments.required("config")
        try arguments.finish()
        let configuration: NodeConfiguration
        do { configuration = try NodeConfiguration.load(path: path) } catch {
            throw CLIError.failed("\(path): \(error)")
        }
        let stop = Signals.wait(for: [SIGTERM, SIGINT])
        let started = Locked<Node?>(nil)
        let reload = Signals.handle(SIGHUP) { _ = started.value?.reloadTLS() }
        let node: Node
        do { node = try await Node.start(configuration) } catch {
            throw CLIError.failed("cannot start: \(error)")
        }
        started.withLock { $0 = node }
        let signal = await stop.value
        reload.cancel()
        node.logger.info("signal", ["signal": .int(Int64(signal))])
        await node.shutdown()
    }
}

/// Waits for a termination signal. The mask is reset first: a parent may
/// have left these signals blocked (Foundation's Process does).
enum Signals {
    /// Runs `action` on each delivery of `signal` (which no longer kills the
    /// process) until the returned source is cancelled.
    static func handle(_ signal: Int32, _ action: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        Glibc.signal(signal, SIG_IGN)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
        source.setEventHandler(handler: action)
        source.resume()
        return source
    }

    static func wait(for signals: [Int32]) -> Task<Int32, Never> {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals {
            sigaddset(&set, signal)
            Glibc.signal(signal, SIG_IGN)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let sources = signals.map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
        return Task {
            var iterator = stream.makeAsyncIterator()
            let received = await iterator.next() ?? SIGTERM
            sources.forEach { $0.cancel() }
            return received
        }
    }
}

struct AuditVerifyCommand: Command {
    static let path = ["audit", "verify"]
    static let summary = "verify a node's audit hash chain offline"
    static let help = """
        DATA_DIR

        Opens DATA_DIR/node.sqlite (the node may be stopped or running), recomputes every audit
        event's hash and link, and prints the length and head. Exits 1 if the chain is broken.
        """

    static func run(_ arguments: inout Arguments) async throws {
        guard let directory = arguments.positional() else { throw CLIError.usage("give the node's data directory") }
        try arguments.finish()
        let path = (directory as NSString).appendingPathComponent("node.sqlite")
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError.failed("\(path): no node database there") }
        var options = Database.Options()
        options.queryOnly = true
        let result = try AuditLog.verify(try Database(path: path, options: options))
        if result.valid {
            Output.line("audit chain valid: \(result.length) events, head \(result.head.isEmpty ? "(empty)" : result.head)")
        } else {
            throw CLIError.failed("audit chain BROKEN at event \(result.firstInvalidSeq ?? -1) of \(result.length)")
        }
    }
}

struct PolicyCheckCommand: Command {
    static let path = ["policy", "check"]
    static let summary = "validate a residency policy file"
    static let help = """
        FILE

        Parses and validates the policy (docs/CONFIGURATION.md) and prints what it allows.
        Errors name the offending field.
        """

    static func run(_ arguments: inout Arguments) async throws {
        guard let file = arguments.positional() else { throw CLIError.usage("give the policy file") }
        try arguments.finish()
        let policy: ResidencyPolicy
        do { policy = try ResidencyPolicy(json: try FileIO.read(file, byteCountMax: ResidencyPolicy.documentBytesMax)) } catch {
            throw CLIError.failed("\(file): \(error)")
        }
        Output.line("policy version \(policy.version): valid")
        for region in policy.regions.values.sorted(by: { $0.id < $1.id }) {
            Output.line("  region \(region.id) (\(region.jurisdiction)): \(region.countries.map(\.rawValue).sorted().joined(separator: " "))")
        }
        for rules in policy.purposes.values.sorted(by: { $0.purpose < $1.purpose }) {
            let bases = rules.basis.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.rawValue)" }.joined(separator: " ")
            Output.line("  purpose \(rules.purpose): \(bases)\(rules.gpc ? " (gpc)" : "")")
        }
        for rule in policy.transfers {
            let from = rule.from.map { $0.map(\.rawValue).sorted().joined(separator: ",") } ?? "*"
            let to = rule.to.map { $0.map(\.rawValue).sorted().joined(separator: ",") } ?? "*"
            Output.line("  transfer \(rule.dataClass.rawValue): \(from) -> \(to)")
        }
    }
}

struct TokenGenerateCommand: Command {
    static let path = ["token", "generate"]
    static let summary = "print a new bearer token and the SHA-256 a principals file stores"
    static let help = """


        Prints `token <token>` and `sha256 <hex>`. Give the token to the client; put only the
        sha256 in the principals file.
        """

    static func run(_ arguments: inout Arguments) async throws {
        try arguments.finish()
        let token = Base64.encodeURL(SecureRandom.bytes(32))
        Output.line("token \(token)")
        Output.line("sha256 \(Hex.encode(SHA256.hash(token)))")
    }
}
