import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileNode
import DomicilePrivacy
import Foundation

/// `domicile bench privacy`: the exact samplers, and aggregate releases
/// over a region of subjects.
struct BenchPrivacyCommand: Command {
    static let path = ["bench", "privacy"]
    static let summary = "benchmark the exact DP samplers and aggregate releases over many subjects"
    static let help = """
        [--seconds N] [--subjects N] [--skip-aggregates]

        Samples per second, on one thread over OpenSSL's CSPRNG (drawn 4 KiB at a time), of the
        discrete Laplace and the discrete Gaussian at several scales, against the floating-point
        Laplace sampler they replace (-b·ln U over the same generator; timed, never used), each for
        --seconds (default 2); and the CSPRNG's draw rate, buffered and not. Then lays out a
        one-region node, registers --subjects subjects (default 100000) with analytics consent and
        a number and a category feature each, and times releases (count, sum, mean, histogram;
        Laplace and Gaussian): median of 5, against a count (no decryption) as the reference.
        Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = try arguments.integer("seconds", default: 2, range: 1...60)
        let subjects = try arguments.integer("subjects", default: 100_000, range: 100...2_000_000)
        let skipAggregates = arguments.flag("skip-aggregates")
        try arguments.finish()
        Output.line("domicile bench privacy (one thread, OpenSSL CSPRNG, \(seconds) s per figure)")
        var unbuffered = SecureRandom()
        var sink: UInt64 = 0
        let reference = Bench.rate(seconds: Double(seconds)) { sink &+= unbuffered.next() }
        Output.line("  csprng 64-bit draws, one RAND_bytes call each: \(Bench.format(reference))")
        var random = BufferedSecureRandom()
        let buffered = Bench.rate(seconds: Double(seconds)) { sink &+= random.next() }
        Output.line(String(format: "  csprng 64-bit draws from a 4 KiB buffer (what the samplers use): %@ (%.1f×)", Bench.format(buffered),
                           buffered / reference))
        // What the exact samplers replace: inverse-CDF Laplace in floating point (Mironov 2012 showed it leaks). Timed, never used.
        var floating = 0.0
        let naive = Bench.rate(seconds: Double(seconds), batch: 100) {
            let u = (Double(random.next() >> 11) + 1) * 0x1p-53
            floating += (random.next() & 1 == 0 ? 1 : -1) * -log(u)
        }
        Output.line(String(format: "  reference: floating-point Laplace (-b·ln U; leaks through floating-point gaps, used nowhere): %@", Bench.format(naive)))
        let samplers: [(String, () throws -> NoiseMechanism.Calibrated)] = [
            ("discrete Laplace, scale 1", { try NoiseMechanism.laplace.calibrate(epsilon: 1, delta: 0, sensitivity: 1) }),
            ("discrete Laplace, scale 100", { try NoiseMechanism.laplace.calibrate(epsilon: 0.01, delta: 0, sensitivity: 1) }),
            ("discrete Laplace, scale 1e6", { try NoiseMechanism.laplace.calibrate(epsilon: 1, delta: 0, sensitivity: 1e6) }),
            ("discrete Gaussian, sigma ~4.4 (eps 1, delta 1e-6)", { try NoiseMechanism.gaussian.calibrate(epsilon: 1, delta: 1e-6, sensitivity: 1) }),
            ("discrete Gaussian, sigma ~440", { try NoiseMechanism.gaussian.calibrate(epsilon: 1, delta: 1e-6, sensitivity: 100) }),
            ("discrete Gaussian, sigma ~4.4e6 (near the largest scale allowed)", {
                try NoiseMechanism.gaussian.calibrate(epsilon: 1, delta: 1e-6, sensitivity: 1e6)
            }),
        ]
        for (name, make) in samplers {
            let noise = try make()
            let rate = Bench.rate(seconds: Double(seconds), batch: 100) { sink &+= UInt64(bitPattern: noise.sample(using: &random)) }
            Output.line(String(format: "  %@: %@ (%.2f of the floating-point sampler)", name, Bench.format(rate), rate / naive))
        }
        if sink == 42 || floating == 0.5 { Output.line("") }  // keeps the draws from being optimized away
        if !skipAggregates { try await measureAggregates(subjects: subjects) }
    }

    static func measureAggregates(subjects: Int) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-privacy-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bench = try await BenchNode.start(in: directory, limits: ["privacy_epsilon_per_period": 1_000.0], requestTimeoutMilliseconds: 120_000)
        let (client, address) = (bench.client, bench.address)
        // Stopped on every path: a node dropped while its event loops run would crash the process.
        do {
            let headers = bench.headers

            var started = Bench.monotonicSeconds()
            let pids = try await BenchNodeCommand.register(subjects, client: client, address: address, headers: headers("ingest"))
            try await BenchNodeCommand.grantAll(pids, purposes: ["analytics"], client: client, address: address, headers: headers("ingest"))
            for (name, type) in [("spend", "number"), ("segment", "string")] {
                let response = try await client.send("PUT", "/v1/feature-definitions/\(name)", to: address, headers: headers("admin"),
                                                     body: Array(#"{"type":"\#(type)","purpose":"analytics","ttl_seconds":86400,"classification":"behavioral"}"#.utf8))
                guard [200, 201].contains(response.status) else { throw CLIError.failed("feature definition refused: \(response.status)") }
            }
            let segments = ["bronze", "silver", "gold", "platinum"]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<64 {
                    group.addTask {
                        for index in stride(from: worker, to: pids.count, by: 64) {
                            let body = #"{"values":{"spend":\#(index % 500),"segment":"\#(segments[index % 4])"}}"#
                            let response = try await client.send("PUT", "/v1/subjects/\(pids[index])/features", to: address,
                                                                 headers: headers("ingest"), body: Array(body.utf8))
                            guard response.status == 200 else { throw CLIError.failed("feature write refused: \(response.status)") }
                        }
                    }
                }
                try await group.waitForAll()
            }
            Output.line(String(format: "  %d subjects with analytics consent and 2 features each, loaded in %.0f s", pids.count,
                               Bench.monotonicSeconds() - started))
            let releases: [(String, String)] = [
                ("count", #"{"name":"b_count","kind":"count","epsilon":0.5}"#),
                ("sum (laplace)", #"{"name":"b_sum","kind":"sum","feature":"spend","clamp":[0,500],"epsilon":0.5}"#),
                ("mean (gaussian)", #"{"name":"b_mean","kind":"mean","feature":"spend","clamp":[0,500],"mechanism":"gaussian","epsilon":0.5,"delta":1e-7}"#),
                ("histogram (4 categories)", #"{"name":"b_hist","kind":"histogram","feature":"segment","categories":["bronze","silver","gold","platinum"],"epsilon":0.5}"#),
            ]
            var countMedian = 0.0
            for (name, body) in releases {
                var samples: [Double] = []
                for _ in 0..<5 {
                    started = Bench.monotonicSeconds()
                    let response = try await client.send("POST", "/v1/aggregates", to: address, headers: headers("analyst"), body: Array(body.utf8))
                    guard response.status == 201 else { throw CLIError.failed("release refused: \(response.status) \(response.text)") }
                    samples.append((Bench.monotonicSeconds() - started) * 1_000)
                }
                let median = samples.sorted()[2]
                if countMedian == 0 { countMedian = median }
                Output.line(String(format: "  %@: median %.0f ms over %d subjects (%.2f µs per subject; %.1f× the count)", name, median, pids.count,
                                   median * 1_000 / Double(pids.count), median / countMedian))
            }
        } catch {
            await bench.stop()
            throw error
        }
        await bench.stop()
    }
}
