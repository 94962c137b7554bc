import Foundation
import XCTest

/// Seeded runs of the region log under a nemesis (RaftSimulation). A failing
/// run names its seed; `DOMICILE_RAFT_SEED=<seed> swift test --filter
/// RaftSimulationTests` replays exactly that run; `DOMICILE_RAFT_SEED_COUNT`
/// runs more seeds than CI does.
final class RaftSimulationTests: XCTestCase {
    func test_simulation_threeNodes_safeUnderCrashesPartitionsAndLoss() throws {
        try runSeeds(count: 600, base: 0x3000) { RaftSimulation.Plan() }
    }

    func test_simulation_fiveNodes_safeUnderCrashesPartitionsAndLoss() throws {
        try runSeeds(count: 300, base: 0x5000) {
            var plan = RaftSimulation.Plan()
            plan.voters = 5
            return plan
        }
    }

    func test_simulation_membershipChanges_safeUnderTheNemesis() throws {
        try runSeeds(count: 300, base: 0x7000) {
            var plan = RaftSimulation.Plan()
            plan.membershipChanges = true
            plan.chaosTime = 500
            return plan
        }
    }

    private func runSeeds(count: Int, base: UInt64, plan: () -> RaftSimulation.Plan) throws {
        let seeds: [UInt64]
        if let replay = ProcessInfo.processInfo.environment["DOMICILE_RAFT_SEED"], let seed = UInt64(replay) {
            seeds = [seed]
        } else {
            let environment = ProcessInfo.processInfo.environment["DOMICILE_RAFT_SEED_COUNT"]
            let runs = environment.flatMap { UInt64($0) } ?? UInt64(count)
            seeds = (0..<runs).map { base + $0 }
        }
        var acknowledged = 0
        for seed in seeds {
            let simulation = try RaftSimulation(seed: seed, plan: plan())
            do {
                try simulation.run()
            } catch {
                XCTFail("seed \(seed) failed: \(error). Replay: DOMICILE_RAFT_SEED=\(seed) swift test --filter \(name)")
                return
            }
            acknowledged += simulation.acknowledgedCount
        }
        XCTAssertGreaterThan(acknowledged, seeds.count, "the runs acknowledged proposals")
        print("raft simulation: \(seeds.count) seeds from \(seeds.first!), \(acknowledged) proposals acknowledged")
    }
}
