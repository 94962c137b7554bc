import DomicileSimulation

/// `domicile simulate federation`: one seeded run of the federation's
/// simulator, to replay by hand a seed a test reported.
struct SimulateFederationCommand: Command {
    static let path = ["simulate", "federation"]
    static let summary = "run the federation's simulator for one seed and print what happened"
    static let help = """
        --seed N [--regions N] [--steps K]

        Runs N regions (default 4), each one anti-entropy machine (docs/FEDERATION.md), in the deterministic
        simulator for K time units (default 300) under the nemesis — message loss, delay, duplication,
        reordering, partitions, crashes (also inside the shell) and restarts from the simulated stores — while
        clients publish releases, noised embeddings and retractions, and start erasures; then heals and waits until every region converges. Every
        safety property is checked after every step. Prints what happened and the violation, if any (exit
        status 1). The same seed replays the same run:
        DOMICILE_FEDERATION_SEED=N swift test --filter FederationSimulationTests.
        """

    static func run(_ arguments: inout Arguments) async throws {
        guard let seed = UInt64(try arguments.required("seed")) else { throw CLIError.usage("--seed is an unsigned integer") }
        var plan = FederationSimulation.Plan()
        plan.regions = try arguments.integer("regions", default: plan.regions, range: 2...64)
        plan.chaosTime = try arguments.integer("steps", default: plan.chaosTime, range: 1...1_000_000)
        try arguments.finish()
        let outcome = try FederationSimulation(seed: seed, plan: plan).run()
        Output.line("federation simulation: seed \(seed), \(outcome.regions) regions, \(outcome.steps) steps (\(plan.chaosTime) under the nemesis)")
        Output.line("  releases \(outcome.releases), erasures \(outcome.erasures), certificates completed \(outcome.certificatesCompleted)")
        Output.line("  noised embeddings \(outcome.embeddings), bodies retired \(outcome.retirements)")
        Output.line("  crashes \(outcome.crashes) (\(outcome.shellCrashes) inside the shell), restarts \(outcome.restarts), "
            + "partitions \(outcome.partitions), messages sent \(outcome.messagesSent), dropped \(outcome.messagesDropped)")
        Output.line("  exchanges stopped at a bound \(outcome.boundedExchanges) (\(outcome.byteBoundedExchanges) at the byte bound), "
            + "largest \(outcome.largestExchangeBytes) bytes")
        guard let violation = outcome.violation else {
            Output.line("  no violation")
            return
        }
        Output.line("  VIOLATION: \(violation)")
        throw CLIError.failed("seed \(seed) breaks \(violation.property.rawValue)")
    }
}
