@testable import DomicileFederation
import DomicileModel
import DomicileSimulation
import Foundation
import XCTest

/// Seeded runs of the federation under a nemesis (`FederationSimulation`),
/// its properties checked after every step and convergence at the end. A
/// failing run names its seed; `DOMICILE_FEDERATION_SEED=<seed> swift test
/// --filter FederationSimulationTests` replays exactly that run;
/// `DOMICILE_FEDERATION_SEED_COUNT` runs more seeds than CI does.
final class FederationSimulationTests: XCTestCase {
    func test_simulation_fourRegions_convergeUnderLossPartitionsAndCrashes() throws {
        try runSeeds(count: 200, base: 0xF000) { FederationSimulation.Plan() }
    }

    /// More regions, crashes inside the shell more often (a transaction lost
    /// or kept whole before its sync, a batch never sent).
    func test_simulation_sixRegions_crashesInsideTheShell() throws {
        try runSeeds(count: 100, base: 0xF800) {
            var plan = FederationSimulation.Plan()
            plan.regions = 6
            plan.shellCrashProbability = 0.05
            plan.restartProbability = 0.2
            return plan
        }
    }

    /// A known-bad machine: a region that relays its placeholders to regions
    /// the policy lets hold the record (`unsafeRelayPlaceholders`). Those
    /// regions' vectors advance past a release they never get; the run must
    /// end without convergence. The first catch prints its seed.
    func test_simulation_catchesRelayingPlaceholdersToAllowedRegions() throws {
        var plan = FederationSimulation.Plan()
        plan.settings.unsafeRelayPlaceholders = true
        try expectCaught(plan, what: "relaying placeholders")
    }

    /// A known-bad machine that keeps the bodies newer noised embeddings
    /// supersede: a store holds two generations of one subject's copy.
    func test_simulation_catchesKeepingSupersededCopies() throws {
        var plan = FederationSimulation.Plan()
        plan.settings.unsafeKeepSupersededEmbeddings = true
        try expectCaught(plan, what: "keeping superseded copies")
    }

    private func expectCaught(_ plan: FederationSimulation.Plan, what: String) throws {
        for seed in seeds(count: 200, base: 0xF000) {
            let outcome = try FederationSimulation(seed: seed, plan: plan).run()
            guard let violation = outcome.violation else { continue }
            print("federation simulation: \(what) is caught at seed \(seed): \(violation)")
            return
        }
        XCTFail("no seed caught \(what)")
    }

    private func seeds(count: Int, base: UInt64) -> [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let replay = environment["DOMICILE_FEDERATION_SEED"], let seed = UInt64(replay) { return [seed] }
        let runs = environment["DOMICILE_FEDERATION_SEED_COUNT"].flatMap { UInt64($0) } ?? UInt64(count)
        return (0..<runs).map { base + $0 }
    }

    private func runSeeds(count: Int, base: UInt64, plan: () -> FederationSimulation.Plan) throws {
        let seeds = seeds(count: count, base: base)
        var releases = 0
        var certificates = 0
        var bounded = 0
        var byteBounded = 0
        var shellCrashes = 0
        for seed in seeds {
            let outcome = try FederationSimulation(seed: seed, plan: plan()).run()
            if let violation = outcome.violation {
                XCTFail("seed \(seed) failed: \(violation). Replay: DOMICILE_FEDERATION_SEED=\(seed) swift test --filter \(name)")
                return
            }
            releases += outcome.releases
            certificates += outcome.certificatesCompleted
            bounded += outcome.boundedExchanges
            byteBounded += outcome.byteBoundedExchanges
            shellCrashes += outcome.shellCrashes
        }
        XCTAssertGreaterThan(releases, seeds.count, "the runs published releases")
        XCTAssertGreaterThan(certificates, 0, "the runs completed certificates")
        XCTAssertGreaterThan(bounded, 0, "exchanges stopped at a bound and resumed")
        XCTAssertGreaterThan(byteBounded, 0, "exchanges stopped at the byte bound")
        print("federation simulation: \(seeds.count) seeds from \(seeds.first!), \(releases) releases, \(certificates) certificates, "
            + "\(bounded) exchanges resumed after a bound (\(byteBounded) at the byte bound), \(shellCrashes) crashes inside the shell")
    }
}
