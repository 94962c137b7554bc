import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileNode
import DomicileStorage
import Foundation

/// `domicile bench erasure`: what crypto-shredding with bucket keys costs an
/// erasure when the region holds many subjects.
struct BenchErasureCommand: Command {
    static let path = ["bench", "erasure"]
    static let summary = "benchmark erasure with bucket-key rotation on a node holding many subjects"
    static let help = """
        [--subjects N] [--erasures N] [--dir DIR]

        Lays out a one-region node in DIR (default: a temporary directory), registers --erasures
        subjects (default 30) through the API, then adds filler subjects straight into its
        database up to --subjects in all (default 1000000), each with its own key wrapped under
        its pid's bucket key, and restarts the node on it. Then, sequentially: --erasures receipt
        appends (the reference) and --erasures erasures by pid. Each erasure rotates its bucket:
        about subjects/4096 keys re-wrapped under a new bucket key version, and the sealed keyring
        rewritten (fsync'd) twice, before the WAL checkpoint and the 202. Also times one keyring
        rewrite alone. Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let subjectCount = try arguments.integer("subjects", default: 1_000_000, range: 100...10_000_000)
        let erasureCount = try arguments.integer("erasures", default: 30, range: 3...1_000)
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-erasure-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let limits: [String: Any] = ["read_rate_per_second": 10_000_000, "read_burst": 10_000_000, "distinct_subjects_per_minute": 100_000_000]

        var bench = try await BenchNode.start(in: directory, limits: limits, requestTimeoutMilliseconds: 60_000)
        let victims: [String]
        do {
            victims = try await BenchNodeCommand.register(erasureCount * 2, client: bench.client, address: bench.address,
                                                          headers: bench.headers("ingest"))
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()

        let configuration = try NodeConfiguration.load(path: BenchNode.configPath(in: directory))
        let master = try configuration.masterKey.load()
        let keyring = try KeyringFile.load(path: configuration.keyringPath, master: master)
        let filler = subjectCount - victims.count
        Output.line("domicile bench erasure: \(subjectCount) subjects, \(keyring.buckets.count) buckets "
                    + "(about \(subjectCount / max(keyring.buckets.count, 1)) subject keys per bucket)")
        let started = Bench.monotonicSeconds()
        try addFiller(filler, keyring: keyring, databasePath: configuration.databasePath)
        Output.line(String(format: "filler subjects written in %.1f s", Bench.monotonicSeconds() - started))

        let sealed = keyring.sealed(with: master)
        let scratch = (directory as NSString).appendingPathComponent("scratch.keyring")
        var rewrites: [Double] = []
        for _ in 0..<erasureCount {
            let start = Bench.monotonicSeconds()
            try KeyringFile.save(keyring, path: scratch, master: master, replacing: true)
            rewrites.append((Bench.monotonicSeconds() - start) * 1_000)
        }

        bench = try await BenchNode.start(in: directory, limits: limits, requestTimeoutMilliseconds: 60_000, layOut: false)
        do {
            let ingest = bench.headers("ingest")
            let officer = bench.headers("privacy_officer")
            var appends: [Double] = []
            for pid in victims.prefix(erasureCount) {
                let start = Bench.monotonicSeconds()
                let response = try await bench.client.send("POST", "/v1/subjects/\(pid)/consents", to: bench.address, headers: ingest,
                                                           body: Array(BenchNodeCommand.receiptJSON(action: "grant", pid: nil).utf8))
                guard response.status == 201 else { throw CLIError.failed("receipt refused: \(response.status) \(response.text)") }
                appends.append((Bench.monotonicSeconds() - start) * 1_000)
            }
            var erasures: [Double] = []
            for pid in victims.suffix(erasureCount) {
                let start = Bench.monotonicSeconds()
                let response = try await bench.client.send("POST", "/v1/erasures", to: bench.address, headers: officer,
                                                           body: Array(#"{"pid":"\#(pid)"}"#.utf8))
                guard response.status == 202 else { throw CLIError.failed("erasure failed: \(response.status) \(response.text)") }
                erasures.append((Bench.monotonicSeconds() - start) * 1_000)
            }
            let erasure = summary(erasures), append = summary(appends), rewrite = summary(rewrites)
            Output.line(String(format: "keyring rewrite alone (%d KB sealed)     median %6.2f ms   p90 %6.2f ms",
                               sealed.count / 1_024, rewrite.median, rewrite.p90))
            Output.line(String(format: "receipt append (reference)             median %6.2f ms   p90 %6.2f ms", append.median, append.p90))
            Output.line(String(format: "erasure with bucket rotation           median %6.2f ms   p90 %6.2f ms   ratio %.1f",
                               erasure.median, erasure.p90, erasure.median / append.median))
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()
    }

    /// Subjects straight into the stopped node's database, in one
    /// transaction: each with a fresh key wrapped as the node wraps it.
    static func addFiller(_ count: Int, keyring: Keyring, databasePath: String) throws {
        let database = try Database(path: databasePath)
        let pseudonymizer = try keyring.pseudonymizers().current
        let buckets = keyring.buckets
        let link = SecureRandom.bytes(32)
        try database.transaction {
            for index in 0..<count {
                let pid = pseudonymizer.pid(for: Identifier(kind: .customerID, normalized: "filler-\(index)"))
                let bucketKey = buckets.current(buckets.bucket(of: pid))!
                let wrapped = WrappedSubjectKey.wrap(SecretBytes(randomCount: 32), for: pid, under: bucketKey)
                try database.execute("""
                    INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, wrap_bucket, wrap_version, created_at)
                    VALUES (?, 1, ?, 1, ?, ?, ?, 0)
                    """, [pid.rawValue, link, wrapped, Int64(bucketKey.bucket), Int64(bucketKey.version)])
            }
        }
        try database.checkpoint(.truncate)
    }

    static func summary(_ samples: [Double]) -> (median: Double, p90: Double) {
        let sorted = samples.sorted()
        return (sorted[sorted.count / 2], sorted[Int(Double(sorted.count - 1) * 0.9)])
    }
}
