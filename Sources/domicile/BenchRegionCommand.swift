import DomicileModel
import DomicileNet
import Foundation

/// `domicile bench region`: a 3-node region (real `serve` processes of this
/// binary on loopback) against a 1-node region and a node without a region
/// log, in the same run: writes, reads, failover, catch-up, snapshot,
/// in-region delay.
struct BenchRegionCommand: Command {
    static let path = ["bench", "region"]
    static let summary = "benchmark a 3-node region log against a 1-node region: writes, reads, failover, catch-up, snapshot, delay"
    static let help = """
        [--seconds N] [--rounds N] [--writers LIST] [--readers N] [--failovers N]
        [--behind-seconds N] [--snapshot-seconds N] [--delays LIST|none] [--dir DIR]

        Starts real `domicile serve` processes of this binary on loopback, laid out by
        `cluster init` (access log off, read limits that never refuse), and measures for
        --seconds (default 3) each, writes and reads in --rounds (default 2) interleaved rounds,
        keeping the best round of each:
          - durable acknowledged consent receipts/s (POST /v1/subjects/{pid}/consents) with each
            number of concurrent writers in LIST (default 1,16,256): a node without a region log
            (--no-region-log), a 1-node region (the log commits locally), and a 3-node region with
            every client on the leader, then with the clients spread over the three nodes;
          - consent reads/s (GET /v1/subjects/{pid}/consent, --readers clients, default 64) on
            the same four;
          - time from SIGKILL of the 3-node region's leader to the first acknowledged write sent
            after it, --failovers times (default 5; the killed node restarts and catches up between);
          - catch-up of a follower killed while the leader takes --behind-seconds (default 3) of
            writes from 16 clients, restarted: entries/s until its applied index reaches the
            leader's commit index;
          - snapshot transfer: a 3-node region compacting its log every 100 entries, filled for
            --snapshot-seconds (default 10) with batches of 500 grants; a follower killed while 300
            entries commit, restarted: MB/s of the leader's backup until the follower has applied
            the leader's commit index (backup, chunks over the channel, checks, restore);
          - the writes of a 3-node region (clients on the leader) with 0 ms and each one-way delay
            in LIST (default 1,10 ms) on the region channel only: each node's roster address is a
            relay in this process that holds every chunk for the delay, both ways (the reference,
            0 ms, goes through the same relay).
        Each 3-node figure is also given as a ratio to the 1-node region's. Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = try arguments.integer("seconds", default: 3, range: 1...60)
        let writerCounts = try (arguments.option("writers") ?? "1,16,256").split(separator: ",").map { text in
            guard let count = Int(text), (1...1_024).contains(count) else { throw CLIError.usage("--writers is a comma-separated list of counts in 1...1024") }
            return count
        }
        let readers = try arguments.integer("readers", default: 64, range: 1...1_024)
        let rounds = try arguments.integer("rounds", default: 2, range: 1...10)
        let failovers = try arguments.integer("failovers", default: 5, range: 0...20)
        let behindSeconds = try arguments.integer("behind-seconds", default: 3, range: 1...60)
        let snapshotSeconds = try arguments.integer("snapshot-seconds", default: 10, range: 1...600)
        let delayText = try arguments.option("delays") ?? "1,10"
        let delays: [Int] = delayText == "none" ? [] : try delayText.split(separator: ",").map { text in
            guard let delay = Int(text), (1...1_000).contains(delay) else { throw CLIError.usage("--delays is a list of milliseconds in 1...1000, or none") }
            return delay
        }
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-bench-region-\(UUID().uuidString)").path
        try arguments.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bench = Run(directory: directory, seconds: seconds, writerCounts: writerCounts, readers: readers)

        Output.line("domicile bench region (\(seconds) s per figure, \(System.coreCount) cores, loopback, WAL + synchronous=FULL)")
        try await bench.all(rounds: rounds, failovers: failovers, behindSeconds: behindSeconds)
        try await bench.snapshot(fillSeconds: snapshotSeconds)
        if !delays.isEmpty { try await bench.delayed(delays) }
    }

    /// The configurations compared, in the order measured.
    enum Setup: CaseIterable {
        case logless, single, leader, spread

        var label: String {
            switch self {
            case .logless: return "node without log"
            case .single: return "1-node region"
            case .leader: return "3-node, on leader"
            case .spread: return "3-node, spread"
            }
        }
    }

    struct Run {
        let directory: String
        let seconds: Int
        let writerCounts: [Int]
        let readers: Int
        static let subjectCount = 1_024

        func region(_ name: String, nodes: Int, regionLog: Bool = true, delayRelay: Bool = false,
                    logSettings: [String: Any] = [:]) async throws -> BenchRegion {
            try await BenchRegion(directory: (directory as NSString).appendingPathComponent(name), nodes: nodes, regionLog: regionLog,
                                  delayRelay: delayRelay, logSettings: logSettings)
        }

        /// A region under test with its subjects and where its clients go.
        struct Target {
            let region: BenchRegion
            let leader: String
            let nodes: [String]
            let pids: [String]
        }

        /// Starts the three regions (a node without a log, a 1-node and a
        /// 3-node region), measures writes and reads on the four setups in
        /// interleaved rounds, then the failover and catch-up figures on
        /// the 3-node region.
        func all(rounds: Int, failovers: Int, behindSeconds: Int) async throws {
            var regions: [BenchRegion] = []
            defer { for region in regions { region.stop() } }
            var targets: [Setup: Target] = [:]
            for (setup, nodes, log) in [(Setup.logless, 1, false), (.single, 1, true), (.leader, 3, true)] {
                let region = try await region("\(setup)", nodes: nodes, regionLog: log)
                regions.append(region)
                let leader = try await region.leader()
                let pids = try await BenchNodeCommand.register(Self.subjectCount, client: region.client, address: region.address(leader),
                                                               headers: region.headers("ingest"))
                targets[setup] = Target(region: region, leader: leader, nodes: [leader], pids: pids)
                if setup == .leader { targets[.spread] = Target(region: region, leader: leader, nodes: region.names, pids: pids) }
            }
            try await throughput(targets, rounds: rounds)
            let three = targets[.leader]!.region
            for region in regions where region !== three { region.stop() }
            regions = [three]
            try await failoverAndCatchUp(three, pids: targets[.leader]!.pids, failovers: failovers, behindSeconds: behindSeconds)
        }

        /// Writes then reads on each setup, best of `rounds` interleaved rounds.
        func throughput(_ targets: [Setup: Target], rounds: Int) async throws {
            var writes: [Setup: [Int: (rate: Double, breakdown: String)]] = [:]
            var reads: [Setup: (rate: Double, breakdown: String)] = [:]
            for _ in 0..<rounds {
                for writers in writerCounts {
                    for setup in Setup.allCases {
                        let target = targets[setup]!
                        let (rate, breakdown) = try await measured(target.region, leader: target.leader) {
                            try await write(target.region, targets: target.nodes, writers: writers, pids: target.pids)
                        }
                        if rate > writes[setup]?[writers]?.rate ?? 0 { writes[setup, default: [:]][writers] = (rate, breakdown) }
                    }
                }
                for setup in Setup.allCases {
                    let target = targets[setup]!
                    let (rate, breakdown) = try await measured(target.region, leader: target.leader) {
                        try await read(target.region, targets: target.nodes, pids: target.pids)
                    }
                    if rate > reads[setup]?.rate ?? 0 { reads[setup] = (rate, breakdown) }
                }
            }
            Output.line("durable consent receipts/s (POST /v1/subjects/{pid}/consents), best of \(rounds) rounds; "
                        + "the leader's mean writes per batch and mean wait for a majority; "
                        + "cores busy in the nodes + in the clients")
            Output.line("writers  setup               receipts/s   ratio to 1-node   leader")
            for writers in writerCounts {
                let reference = writes[.single]![writers]!.rate
                for setup in Setup.allCases {
                    let (rate, breakdown) = writes[setup]![writers]!
                    Output.line(String(writers).leftPadded(7) + "  " + setup.label.padding(toLength: 18, withPad: " ", startingAt: 0)
                                + String(format: "%11.0f   %15.2f   ", rate, rate / reference) + breakdown)
                }
            }
            Output.line("consent reads/s (GET /v1/subjects/{pid}/consent, \(readers) clients, best of \(rounds); each read appends an audit event)")
            for setup in Setup.allCases {
                Output.line("         " + setup.label.padding(toLength: 18, withPad: " ", startingAt: 0)
                            + String(format: "%11.0f   %15.2f   ", reads[setup]!.rate, reads[setup]!.rate / reads[.single]!.rate)
                            + reads[setup]!.breakdown)
            }
        }

        /// `body`'s rate, with what the leader's metrics and the processes'
        /// CPU time say about it: mean writes per batch, mean wait for a
        /// majority, cores busy in the nodes and in the clients.
        func measured(_ region: BenchRegion, leader: String,
                      _ body: () async throws -> Double) async throws -> (rate: Double, breakdown: String) {
            let before = (counters: await region.counters(leader), cpu: region.cpuSeconds(), time: Bench.monotonicSeconds())
            let rate = try await body()
            let cpu = region.cpuSeconds(), elapsed = Bench.monotonicSeconds() - before.time
            let breakdown = (await region.counters(leader) - before.counters).breakdown
                + String(format: "   cpu %.2f + %.2f", (cpu.nodes - before.cpu.nodes) / elapsed, (cpu.clients - before.cpu.clients) / elapsed)
            return (rate, breakdown)
        }

        /// `writers` closed-loop clients, client i on `targets[i % count]`,
        /// each granting and revoking on subjects no other client uses at the same time.
        func write(_ region: BenchRegion, targets: [String], writers: Int, pids: [String], seconds: Int? = nil) async throws -> Double {
            let addresses = targets.map(region.address)
            let (client, headers) = (region.client, region.headers("ingest"))
            return try await BenchNodeCommand.closedLoop(clients: writers, seconds: seconds ?? self.seconds) { writer, done in
                let pid = pids[(writer + done * writers) % pids.count]
                let body = BenchNodeCommand.receiptJSON(action: done % 2 == 0 ? "grant" : "revoke", pid: nil)
                let response = try await client.send("POST", "/v1/subjects/\(pid)/consents", to: addresses[writer % addresses.count],
                                                     headers: headers, body: Array(body.utf8))
                guard response.status == 201 else { throw CLIError.failed("receipt refused: \(response.status) \(response.text)") }
            }
        }

        func read(_ region: BenchRegion, targets: [String], pids: [String]) async throws -> Double {
            let addresses = targets.map(region.address)
            let (client, headers) = (region.client, region.headers("serve"))
            return try await BenchNodeCommand.closedLoop(clients: readers, seconds: seconds) { reader, done in
                let pid = pids[(reader * 7_919 + done * 31) % pids.count]
                let response = try await client.send("GET", "/v1/subjects/\(pid)/consent", to: addresses[reader % addresses.count], headers: headers)
                guard response.status == 200 else { throw CLIError.failed("consent read refused: \(response.status) \(response.text)") }
            }
        }

        func failoverAndCatchUp(_ region: BenchRegion, pids: [String], failovers: Int, behindSeconds: Int) async throws {
            if failovers > 0 {
                var samples: [Double] = []
                for _ in 0..<failovers { samples.append(try await failover(region, pids: pids)) }
                let sorted = samples.sorted()
                Output.line("SIGKILL of the leader → first acknowledged write: "
                            + String(format: "median %.2f s   max %.2f s", sorted[sorted.count / 2], sorted.last!)
                            + "   (" + samples.map { String(format: "%.2f", $0) }.joined(separator: ", ") + ")")
            }
            try await catchUp(region, pids: pids, behindSeconds: behindSeconds)
        }

        /// Kills the leader; 8 clients on the other nodes write until one is
        /// acknowledged. Returns the seconds from the kill to that answer,
        /// then restarts the node and waits until it has caught up.
        func failover(_ region: BenchRegion, pids: [String]) async throws -> Double {
            let leader = try await region.leader()
            let survivors = region.names.filter { $0 != leader }.map(region.address)
            let (client, headers) = (region.client, region.headers("ingest"))
            let killed = Bench.monotonicSeconds()
            region.federation.kill(leader)
            let acknowledged = try await withThrowingTaskGroup(of: Double?.self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        var done = 0
                        while !Task.isCancelled, Bench.monotonicSeconds() - killed < 30 {
                            let body = BenchNodeCommand.receiptJSON(action: "grant", pid: nil)
                            let response = try? await client.send("POST", "/v1/subjects/\(pids[(writer * 31 + done) % pids.count])/consents",
                                                                  to: survivors[writer % survivors.count], headers: headers, body: Array(body.utf8))
                            if response?.status == 201 { return Bench.monotonicSeconds() }
                            done += 1
                            try? await Task.sleep(nanoseconds: 5_000_000)
                        }
                        return nil
                    }
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                throw CLIError.failed("no write was acknowledged within 30 s of killing the leader")
            }
            try region.federation.start(leader)
            let newLeader = try await region.leader()
            guard let target = await region.logStatus(newLeader)?.commitIndex else { throw CLIError.failed("the new leader does not answer") }
            try await region.waitApplied(leader, target)
            return acknowledged - killed
        }

        /// Kills a follower, writes for `behindSeconds`, restarts it and
        /// measures how fast it applies what it missed.
        func catchUp(_ region: BenchRegion, pids: [String], behindSeconds: Int) async throws {
            let leader = try await region.leader()
            let follower = region.names.first { $0 != leader }!
            region.federation.kill(follower)
            guard let start = await region.logStatus(leader) else { throw CLIError.failed("the leader does not answer") }
            let rate = try await write(region, targets: [leader], writers: 16, pids: pids, seconds: behindSeconds)
            guard let end = await region.logStatus(leader) else { throw CLIError.failed("the leader does not answer") }
            let entries = end.commitIndex - start.commitIndex
            let spawned = Bench.monotonicSeconds()
            try region.federation.start(follower)
            let listening = Bench.monotonicSeconds()
            var first: (time: Double, applied: UInt64)?
            var last = 0.0
            try await region.waitApplied(follower, end.commitIndex) { time, applied in
                if first == nil { first = (time, applied) }
                last = time
            }
            let applying = await region.counters(follower)
            let measured = first.map { (Double(end.commitIndex) - Double($0.applied), last - $0.time) } ?? (0, 0)
            Output.line(String(format: "follower catch-up: %.0f entries (%.0f receipts) behind; applied %.2f s after restart "
                               + "(%.2f s after it listened)", Double(entries), rate * Double(behindSeconds), last - spawned, last - listening))
            if measured.0 > 0, measured.1 > 0 {
                Output.line(String(format: "                   %.0f entries/s (%.0f entries from its first answer on, in %.2f s)",
                                   measured.0 / measured.1, measured.0, measured.1))
                Output.line(String(format: "                   applying: %.0f entries, mean %.2f ms each (one transaction each), %.2f s in all",
                                   applying.applies, applying.applySeconds * 1_000 / max(applying.applies, 1), applying.applySeconds))
            } else {
                Output.line("                   every missed entry was applied before its first answer (rate not separable from start-up)")
            }
        }

        /// A 3-node region compacting its log every 100 entries: filled for
        /// `fillSeconds` with batches of 500 grants, a follower killed while
        /// 300 more entries commit, then restarted. It can only catch up by
        /// snapshot (an online backup of the leader's node.sqlite, fetched in
        /// 1 MiB chunks, checked and restored); measures MB/s of that backup
        /// from the follower's restart until it has applied the leader's index.
        func snapshot(fillSeconds: Int) async throws {
            let region = try await region("snapshot", nodes: 3, logSettings: ["compact_entries": Self.compactEntries])
            defer { region.stop() }
            let leader = try await region.leader()
            let ingest = region.headers("ingest")
            let pids = try await BenchNodeCommand.register(Self.subjectCount, client: region.client, address: region.address(leader), headers: ingest)
            _ = try await BenchNodeCommand.ingestBatches(pids, batchSize: 500, seconds: fillSeconds, client: region.client,
                                                         address: region.address(leader), headers: ingest)
            let follower = region.names.first { $0 != leader }!
            region.federation.kill(follower)
            guard let start = await region.logStatus(leader) else { throw CLIError.failed("the leader does not answer") }
            var end = start
            while end.commitIndex < start.commitIndex + 3 * UInt64(Self.compactEntries) {
                _ = try await write(region, targets: [leader], writers: 16, pids: pids, seconds: 1)
                guard let status = await region.logStatus(leader) else { throw CLIError.failed("the leader does not answer") }
                end = status
            }
            let restarted = Bench.monotonicSeconds()
            try region.federation.start(follower)
            let listening = Bench.monotonicSeconds()
            try await region.waitApplied(follower, end.commitIndex, timeout: 300)
            let elapsed = Bench.monotonicSeconds() - listening
            let leaderData = region.federation.path("\(leader)/data")
            let backups = ((try? FileManager.default.contentsOfDirectory(atPath: leaderData)) ?? []).filter { $0.hasPrefix("snapshot-out-") }
            let bytes = backups.compactMap { try? FileManager.default.attributesOfItem(atPath: "\(leaderData)/\($0)")[.size] as? Int }.max()
            let installed = region.federation.processes[follower]?.output.contains { $0.contains("region log snapshot installed") } ?? false
            guard installed, let bytes else {
                Output.line("snapshot transfer: the follower caught up without a snapshot (none was installed); not measured")
                return
            }
            Output.line(String(format: "snapshot transfer: %.1f MB backup of the leader's node.sqlite, follower %.0f entries behind "
                               + "(log compacted every %d): all applied %.2f s after it listened (%.2f s after its restart), %.1f MB/s",
                               Double(bytes) / 1e6, Double(end.commitIndex - start.commitIndex), Self.compactEntries, elapsed,
                               elapsed + listening - restarted, Double(bytes) / 1e6 / elapsed))
        }

        static let compactEntries = 100

        /// A 3-node region whose nodes reach each other's channel through a
        /// `DelayRelay`; clients on the leader; writes with 0 ms and each delay.
        func delayed(_ delays: [Int]) async throws {
            let region = try await region("delayed", nodes: 3, delayRelay: true)
            defer { region.stop() }
            let leader = try await region.leader()
            let pids = try await BenchNodeCommand.register(Self.subjectCount, client: region.client, address: region.address(leader),
                                                           headers: region.headers("ingest"))
            Output.line("3-node region, clients on the leader, one-way delay on the region channel only "
                        + "(a relay in this process holds each chunk, both directions)")
            Output.line("writers  delay    receipts/s   ratio to 0 ms   leader")
            var references: [Int: Double] = [:]
            for delay in [0] + delays {
                region.relay!.setDelay(milliseconds: delay)
                for writers in writerCounts {
                    let (rate, breakdown) = try await measured(region, leader: leader) {
                        try await write(region, targets: [leader], writers: writers, pids: pids)
                    }
                    references[writers] = references[writers] ?? rate
                    Output.line(String(writers).leftPadded(7) + "  " + "\(delay) ms".padding(toLength: 7, withPad: " ", startingAt: 0)
                                + String(format: "%12.0f   %13.2f   ", rate, rate / references[writers]!) + breakdown)
                }
            }
        }
    }
}
