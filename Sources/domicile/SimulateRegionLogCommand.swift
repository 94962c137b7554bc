import DomicileSimulation

/// `domicile simulate region-log`: one seeded run of the region log's
/// simulator, to replay by hand a seed a test reported.
struct SimulateRegionLogCommand: Command {
    static let path = ["simulate", "region-log"]
    static let summary = "run the region log's simulator for one seed and print what happened"
    static let help = """
        --seed N [--nodes 3|5] [--steps K] [--membership-changes]

        Runs the region log (real Raft machines) in the deterministic simulator for K time units
        (default 300) under the nemesis — message loss, delay, duplication, reordering, partitions,
        crashes (also inside the shell: before a write is synced, before sending, while applying),
        restarts from the simulated disks — then heals and waits for every member to apply every
        acknowledged proposal. Every safety property is checked after every step. Prints steps,
        elections, commits, crashes and the violation, if any (exit status 1). The same seed
        replays the same run: DOMICILE_RAFT_SEED=N swift test --filter RegionLogSimulationTests.
        """

    static func run(_ arguments: inout Arguments) async throws {
        guard let seed = UInt64(try arguments.required("seed")) else { throw CLIError.usage("--seed is an unsigned integer") }
        var plan = RegionLogSimulation.Plan()
        plan.voters = try arguments.integer("nodes", default: 3, range: 3...5)
        guard plan.voters != 4 else { throw CLIError.usage("--nodes is 3 or 5") }
        plan.chaosTime = try arguments.integer("steps", default: plan.chaosTime, range: 1...1_000_000)
        plan.membershipChanges = arguments.flag("membership-changes")
        try arguments.finish()
        let outcome = try RegionLogSimulation(seed: seed, plan: plan).run()
        Output.line("region log simulation: seed \(seed), \(outcome.voters) voters, pre-vote \(outcome.preVote ? "on" : "off"), "
            + "check-quorum \(outcome.checkQuorum ? "on" : "off")")
        Output.line("  steps \(outcome.steps) (\(plan.chaosTime) under the nemesis), elections won \(outcome.elections), "
            + "committed through \(outcome.committedIndex), proposals acknowledged \(outcome.acknowledged)")
        Output.line("  crashes \(outcome.crashes) (\(outcome.shellCrashes) injected inside the shell), restarts \(outcome.restarts), "
            + "partitions \(outcome.partitions), messages sent \(outcome.messagesSent), dropped \(outcome.messagesDropped)")
        guard let violation = outcome.violation else {
            Output.line("  no violation")
            return
        }
        Output.line("  VIOLATION: \(violation)")
        throw CLIError.failed("seed \(seed) breaks \(violation.property.rawValue)")
    }
}
