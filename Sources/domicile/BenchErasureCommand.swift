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

        Lays out a one-region node in DIR (default: a temporary directory) and registers 3 x --erasures
        subjects (default 30) through the API. With only those, sequentially: --erasures receipt
        appends (the reference) and --erasures erasures by pid (rotations with nothing to re-wrap).
        Then adds filler subjects straight into its database up to --subjects in all (default
        1000000), each with its own key wrapped under its pid's bucket key, restarts the node on it
        and times --erasures erasures again: each rotates its bucket, about subjects/4096 keys
        re-wrapped under a new version, the sealed keyring rewritten (fsync'd) twice, before the WAL
        checkpoint and the 202. Also times one keyring rewrite alone. Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let subjectCount = try arguments.integer("subjects", default: 1_000_000, range: 100...10_000_000)
        let erasureCount = try arguments.integer("erasures", default: 30, range: 3...1_000)
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-erasure-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let limits: [String: Any] = ["read_rate_per_second": 10_000_000, "read_burst": 10_000_000, "distinct_subjects_per_minute": 100_000_000]

        // Phase 1, a node holding a few subjects: receipt appends (the reference) and erasures whose bucket
        // rotation has almost nothing to re-wrap (the keyring rewrites, the erasure, the checkpoint).
        var bench = try await BenchNode.start(in: directory, limits: limits, requestTimeoutMilliseconds: 60_000)
        let victims: [String]
        let appends: [Double], smallErasures: [Double]
        do {
            victims = try await BenchNodeCommand.register(erasureCount * 3, client: bench.client, address: bench.address,
                                                          headers: bench.headers("ingest"))
            appends = try await timeReceipts(victims.prefix(erasureCount), bench)
            smallErasures = try await timeErasures(victims.dropFirst(erasureCount).prefix(erasureCount), bench)
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()

        let configuration = try NodeConfiguration.load(path: BenchNode.configPath(in: directory))
        let master = try configuration.masterKey.load()
        let keyring = try KeyringFile.load(path: configuration.keyringPath, master: master)
        Output.line("domicile bench erasure: \(subjectCount) subjects, \(keyring.buckets.count) buckets "
                    + "(about \(subjectCount / max(keyring.buckets.count, 1)) subject keys per bucket)")
        let started = Bench.monotonicSeconds()
        try addFiller(subjectCount - victims.count, keyring: keyring, databasePath: configuration.databasePath)
        Output.line(String(format: "filler subjects written in %.1f s", Bench.monotonicSeconds() - started))

        let scratch = (directory as NSString).appendingPathComponent("scratch.keyring")
        var rewrites: [Double] = []
        for _ in 0..<erasureCount {
            let start = Bench.monotonicSeconds()
            try KeyringFile.save(keyring, path: scratch, master: master, replacing: true)
            rewrites.append((Bench.monotonicSeconds() - start) * 1_000)
        }

        // The cryptographic part of one rotation alone: unwrap and re-wrap one bucket's worth of keys.
        let perBucket = max(subjectCount / max(keyring.buckets.count, 1), 1)
        let pseudonymizer = try keyring.pseudonymizers().current
        let (old, new) = (keyring.buckets.current(0)!, BucketKey(bucket: 0, version: 2, createdAt: 0, material: SecretBytes(randomCount: 32)))
        var random = SecureRandom()
        let sample = (0..<perBucket).map { index -> (PID, [UInt8]) in
            let pid = pseudonymizer.pid(for: Identifier(kind: .customerID, normalized: "rewrap-\(index)"))
            return (pid, WrappedSubjectKey.wrap(SecretBytes(randomCount: 32), for: pid, under: old, using: &random))
        }
        var rewraps: [Double] = []
        for _ in 0..<erasureCount {
            let start = Bench.monotonicSeconds()
            for (pid, wrapped) in sample {
                _ = WrappedSubjectKey.wrap(SecretBytes(try WrappedSubjectKey.unwrap(wrapped, for: pid, under: old)), for: pid, under: new, using: &random)
            }
            rewraps.append((Bench.monotonicSeconds() - start) * 1_000)
        }

        // Phase 2, the same node restarted on the full region.
        bench = try await BenchNode.start(in: directory, limits: limits, requestTimeoutMilliseconds: 60_000, layOut: false)
        let erasures: [Double]
        do {
            erasures = try await timeErasures(victims.suffix(erasureCount), bench)
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()
        let append = summary(appends), small = summary(smallErasures), erasure = summary(erasures), rewrite = summary(rewrites)
        Output.line(String(format: "receipt append (reference)                  median %6.2f ms   p90 %6.2f ms", append.median, append.p90))
        Output.line(String(format: "keyring rewrite alone (%3d KB sealed)        median %6.2f ms   p90 %6.2f ms",
                           keyring.sealed(with: master).count / 1_024, rewrite.median, rewrite.p90))
        Output.line(String(format: "re-wrap of %4d keys, crypto alone            median %6.2f ms", perBucket, summary(rewraps).median))
        Output.line(String(format: "erasure, \(victims.count) subjects (nothing to re-wrap)  median %6.2f ms   p90 %6.2f ms   ratio to append %.1f",
                           small.median, small.p90, small.median / append.median))
        Output.line(String(format: "erasure, \(subjectCount) subjects                median %6.2f ms   p90 %6.2f ms   ratio to append %.1f, "
                           + "to the small region %.1f", erasure.median, erasure.p90, erasure.median / append.median, erasure.median / small.median))
    }

    static func timeReceipts(_ pids: ArraySlice<String>, _ bench: BenchNode) async throws -> [Double] {
        var samples: [Double] = []
        for pid in pids {
            let start = Bench.monotonicSeconds()
            let response = try await bench.client.send("POST", "/v1/subjects/\(pid)/consents", to: bench.address, headers: bench.headers("ingest"),
                                                       body: Array(BenchNodeCommand.receiptJSON(action: "grant", pid: nil).utf8))
            guard response.status == 201 else { throw CLIError.failed("receipt refused: \(response.status) \(response.text)") }
            samples.append((Bench.monotonicSeconds() - start) * 1_000)
        }
        return samples
    }

    static func timeErasures(_ pids: ArraySlice<String>, _ bench: BenchNode) async throws -> [Double] {
        var samples: [Double] = []
        for pid in pids {
            let start = Bench.monotonicSeconds()
            let response = try await bench.client.send("POST", "/v1/erasures", to: bench.address, headers: bench.headers("privacy_officer"),
                                                       body: Array(#"{"pid":"\#(pid)"}"#.utf8))
            guard response.status == 202 else {
                throw CLIError.failed("erasure failed: \(response.status) \(response.text)")
            }
            samples.append((Bench.monotonicSeconds() - start) * 1_000)
        }
        return samples
    }

    /// Subjects straight into the stopped node's database, in one
    /// transaction: each with a fresh key wrapped as the node wraps it.
    static func addFiller(_ count: Int, keyring: Keyring, databasePath: String) throws {
        let database = try Database(path: databasePath)
        let pseudonymizer = try keyring.pseudonymizers().current
        let buckets = keyring.buckets
        let link = SecureRandom.bytes(32)
        var random = SecureRandom()
        try database.transaction {
            for index in 0..<count {
                let pid = pseudonymizer.pid(for: Identifier(kind: .customerID, normalized: "filler-\(index)"))
                let bucketKey = buckets.current(buckets.bucket(of: pid))!
                let wrapped = WrappedSubjectKey.wrap(SecretBytes(randomCount: 32), for: pid, under: bucketKey, using: &random)
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
