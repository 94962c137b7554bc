import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileNet
import Foundation

/// Timing helpers for `domicile bench …`. Benchmarks report rates and, where
/// the issue asks, ratios against a reference measured in the same run.
enum Bench {
    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Runs `body` in rounds of `batch` calls until `seconds` have passed;
    /// returns calls per second.
    static func rate(seconds: Double, batch: Int = 1_000, _ body: () -> Void) -> Double {
        // Warm-up: first calls pay for lazy initialization and cold caches.
        for _ in 0..<batch { body() }
        let start = monotonicSeconds()
        var calls = 0
        var elapsed = 0.0
        repeat {
            for _ in 0..<batch { body() }
            calls += batch
            elapsed = monotonicSeconds() - start
        } while elapsed < seconds
        return Double(calls) / elapsed
    }

    static func format(_ rate: Double) -> String {
        switch rate {
        case 1e6...: return String(format: "%.2f M/s", rate / 1e6)
        case 1e3...: return String(format: "%.1f k/s", rate / 1e3)
        default: return String(format: "%.0f /s", rate)
        }
    }

    /// Runs a command and returns its standard output, or nil if it could not run.
    static func capture(_ executable: String, _ arguments: [String]) -> String? {
        let result: (output: String, status: Int32)
        do { result = try ChildProcess.run(executable, arguments) } catch { Output.error("\(error)"); return nil }
        guard result.status == 0 else { Output.error("\(executable) exited with \(result.status)"); return nil }
        return result.output
    }
}

struct BenchCryptoCommand: Command {
    static let path = ["bench", "crypto"]
    static let summary = "benchmark pseudonyms, AES-GCM and Ed25519 against `openssl speed`"
    static let help = """
        [--seconds N] [--rounds N] [--only hmac|pseudonym|aes|ed25519]

        Measures, on one core: HMAC-SHA256 of 64 bytes and pseudonyms (pid of a normalized e-mail
        address), against `openssl speed -seconds N -bytes 64 -hmac sha256` run in the same
        process's lifetime; then AES-256-GCM envelopes and Ed25519. Build with -c release.
        The reference and the HMAC figures are measured in --rounds interleaved rounds (default 3)
        and the best round of each is reported, so a noisy neighbour on a shared machine skews
        neither side alone.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = try arguments.integer("seconds", default: 3, range: 1...60)
        let rounds = try arguments.integer("rounds", default: 3, range: 1...20)
        let only = try arguments.option("only")
        try arguments.finish()
        let selected = { (name: String) in only == nil || only == name }

        Output.line("domicile bench crypto (\(seconds) s per figure, one thread, best of \(rounds) interleaved rounds)")
        let key = try HMACKey(key: SecureRandom.bytes(32))
        let message = [UInt8](repeating: 0x61, count: 64)
        var sink: UInt8 = 0
        var output = [UInt8](repeating: 0, count: 32)
        let pseudonymizer = Pseudonymizer(region: try RegionID("eu"), keyVersion: 1, key: key)
        let identifiers = (0..<1024).map { try! Identifier(kind: .email, raw: "customer.\($0)@example-retail.com") }
        var index = 0

        var best: (reference: Double?, hmac: Double, pseudonym: Double) = (nil, 0, 0)
        if selected("hmac") || selected("pseudonym") {
            for _ in 0..<rounds {
                if let reference = opensslHMACRate(seconds: seconds) { best.reference = max(best.reference ?? 0, reference) }
                if selected("hmac") {
                    best.hmac = max(best.hmac, Bench.rate(seconds: Double(seconds)) {
                        message.withUnsafeBytes { raw in output.withUnsafeMutableBytes { key.authenticate(raw, into: $0) } }
                        sink &+= output[0]
                    })
                }
                if selected("pseudonym") {
                    best.pseudonym = max(best.pseudonym, Bench.rate(seconds: Double(seconds)) {
                        let pid = pseudonymizer.pid(for: identifiers[index & 1023])
                        sink &+= UInt8(truncatingIfNeeded: pid.rawValue.utf8.count)
                        index += 1
                    })
                }
            }
            if let reference = best.reference {
                Output.line("reference  openssl speed hmac(sha256) 64 B      \(Bench.format(reference))")
            } else {
                Output.line("reference  openssl speed: not available (install openssl)")
            }
            if selected("hmac") { report("HMAC-SHA256 64 B (HMACKey)", best.hmac, best.reference) }
            if selected("pseudonym") { report("pseudonym (pid of an e-mail)", best.pseudonym, best.reference) }
        }
        if selected("aes") { try benchAES(seconds: seconds, sink: &sink) }
        if selected("ed25519") { benchEd25519(seconds: seconds, message: message, sink: &sink) }
        if sink == 0x5A { Output.line("") }  // keeps the optimizer from dropping the work
    }

    static func benchAES(seconds: Int, sink: inout UInt8) throws {
        let dataKey = try AESGCMKey(version: 1, secret: SecretBytes(randomCount: 32))
        let plaintext = [UInt8](repeating: 7, count: 256)
        let associatedData = Array("subjects/psn:v1:eu:…".utf8)
        let sealRate = Bench.rate(seconds: Double(seconds)) {
            sink &+= Envelope.seal(plaintext, key: dataKey, associatedData: associatedData)[20]
        }
        report("AES-256-GCM envelope seal 256 B", sealRate, nil)
        let box = Envelope.seal(plaintext, key: dataKey, associatedData: associatedData)
        let openRate = Bench.rate(seconds: Double(seconds)) {
            sink &+= (try? Envelope.open(box, key: dataKey, associatedData: associatedData))?[0] ?? 0
        }
        report("AES-256-GCM envelope open 256 B", openRate, nil)
    }

    static func benchEd25519(seconds: Int, message: [UInt8], sink: inout UInt8) {
        let signer = try! Ed25519PrivateKey(seed: SecureRandom.bytes(32))
        let signRate = Bench.rate(seconds: Double(seconds), batch: 100) {
            sink &+= signer.signature(for: message)[0]
        }
        report("Ed25519 sign 64 B", signRate, nil)
        let signature = signer.signature(for: message)
        let verifyRate = Bench.rate(seconds: Double(seconds), batch: 100) {
            sink &+= signer.publicKey.isValidSignature(signature, for: message) ? 1 : 0
        }
        report("Ed25519 verify 64 B", verifyRate, nil)
    }

    static func report(_ name: String, _ rate: Double, _ reference: Double?) {
        var line = "domicile   " + name.padding(toLength: 34, withPad: " ", startingAt: 0) + Bench.format(rate)
        if let reference { line += String(format: "   ratio %.2f", rate / reference) }
        Output.line(line)
    }

    /// Operations per second from `openssl speed -mr`. Its stdout carries
    /// `+F:<test>:hmac(sha256):<bytes per second>` for the one size asked.
    static func opensslHMACRate(seconds: Int) -> Double? {
        guard let openssl = ChildProcess.find("openssl"),
              let output = Bench.capture(openssl, ["speed", "-seconds", "\(seconds)", "-bytes", "64",
                                                    "-hmac", "sha256", "-mr"]) else { return nil }
        for line in output.split(separator: "\n") where line.hasPrefix("+F:") {
            let fields = line.split(separator: ":")
            if fields.count == 4, let bytesPerSecond = Double(fields[3]) { return bytesPerSecond / 64 }
        }
        return nil
    }
}

struct BenchStorageCommand: Command {
    static let path = ["bench", "storage"]
    static let summary = "benchmark durable writes: group commit against a transaction per write"
    static let help = """
        [--seconds N] [--dir DIR] [--writers LIST]

        For each number of concurrent writers in LIST (default 1,16,256), measures durable
        acknowledged writes per second through the group-commit writer, and through the same
        writer limited to one transaction (one fsync) per write. Each write inserts a 100-byte row.
        DIR (default: a temporary directory) should be on the disk you want to measure.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = try arguments.integer("seconds", default: 3, range: 1...60)
        let directory = try arguments.option("dir") ?? FileManager.default.temporaryDirectory.path
        let writerCounts = try (arguments.option("writers") ?? "1,16,256").split(separator: ",").map { text in
            guard let count = Int(text), (1...4096).contains(count) else {
                throw CLIError.usage("--writers is a comma-separated list of counts in 1...4096")
            }
            return count
        }
        try arguments.finish()

        Output.line("domicile bench storage (\(seconds) s per figure, WAL, synchronous=FULL, in \(directory))")
        Output.line("writers  group commit     one txn per write   ratio   mean batch")
        for writers in writerCounts {
            let grouped = try await measure(writers: writers, seconds: seconds, settings: Writer.Settings(), directory: directory)
            let single = try await measure(writers: writers, seconds: seconds, settings: .oneTransactionPerWrite, directory: directory)
            Output.line(String(writers).leftPadded(7) + "  " + Bench.format(grouped.rate).padding(toLength: 15, withPad: " ", startingAt: 0)
                        + "  " + Bench.format(single.rate).padding(toLength: 18, withPad: " ", startingAt: 0)
                        + String(format: "  %5.1fx   %6.1f", grouped.rate / single.rate, grouped.meanBatch))
        }
    }

    static func measure(writers: Int, seconds: Int, settings: Writer.Settings,
                        directory: String) async throws -> (rate: Double, meanBatch: Double) {
        let path = (directory as NSString).appendingPathComponent("domicile-bench-\(UUID().uuidString).sqlite")
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try Store(path: path, migrator: ProbeSchema.migrator, now: unixNow(), settings: settings)
        defer { store.close() }
        let deadline = Bench.monotonicSeconds() + Double(seconds)
        let start = Bench.monotonicSeconds()
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var written = 0
                    let payload = [UInt8](repeating: 1, count: 100)
                    while Bench.monotonicSeconds() < deadline {
                        let id = Int64(writer) * 100_000_000 + Int64(written)
                        try await store.write { try ProbeSchema.insert($0, id: id, writer: writer, payload: payload) }
                        written += 1
                    }
                    return written
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = Bench.monotonicSeconds() - start
        let statistics = store.writer.currentStatistics
        return (Double(total) / elapsed, Double(statistics.committedRequests) / Double(max(statistics.commits, 1)))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
