import DomicileTestSupport
import XCTest

/// `domicile simulate region-log`, the built binary: one seed runs to a
/// printed outcome, the same output every time (a seed replays exactly);
/// a wrong command line exits 2.
final class SimulateCommandTests: XCTestCase {
    func test_simulateRegionLog_replaysASeedExactly() throws {
        let first = try Binary.run(["simulate", "region-log", "--seed", "12345", "--nodes", "5", "--steps", "200"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("seed 12345, 5 voters"), first.stdout)
        XCTAssertTrue(first.stdout.contains("no violation"), first.stdout)
        let second = try Binary.run(["simulate", "region-log", "--seed", "12345", "--nodes", "5", "--steps", "200"])
        XCTAssertEqual(second.stdout, first.stdout, "the same seed, the same run")
    }

    func test_simulateRegionLog_refusesAWrongCommandLine() throws {
        XCTAssertEqual(try Binary.run(["simulate", "region-log"]).status, 2, "--seed is required")
        XCTAssertEqual(try Binary.run(["simulate", "region-log", "--seed", "1", "--nodes", "4"]).status, 2)
        XCTAssertEqual(try Binary.run(["simulate", "region-log", "--seed", "x"]).status, 2)
    }

    func test_simulateFederation_replaysASeedExactly_andRefusesAWrongCommandLine() throws {
        let first = try Binary.run(["simulate", "federation", "--seed", "7", "--regions", "6", "--steps", "200"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("seed 7, 6 regions"), first.stdout)
        XCTAssertTrue(first.stdout.contains("no violation"), first.stdout)
        let second = try Binary.run(["simulate", "federation", "--seed", "7", "--regions", "6", "--steps", "200"])
        XCTAssertEqual(second.stdout, first.stdout, "the same seed, the same run")
        XCTAssertEqual(try Binary.run(["simulate", "federation"]).status, 2, "--seed is required")
        XCTAssertEqual(try Binary.run(["simulate", "federation", "--seed", "1", "--regions", "1"]).status, 2)
    }
}
