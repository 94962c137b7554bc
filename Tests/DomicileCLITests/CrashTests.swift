import DomicileModel
import DomicileNet
import DomicileStorage
import DomicileTestSupport
import XCTest

/// Nothing acknowledged is lost: a child process writes through the
/// group-commit writer and prints each acknowledged id; it is killed with
/// SIGKILL at random moments, and every printed id must be in the database.
final class CrashTests: XCTestCase {
    func test_groupCommit_neverLosesAnAcknowledgedWrite_underSIGKILL() throws {
        let directory = TemporaryDirectory("domicile-crash")
        let database = directory.file("crash.sqlite")
        let seed = UInt64(ProcessInfo.processInfo.environment["DOMICILE_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        print("crash test seed: \(seed) (replay with DOMICILE_CRASH_SEED=\(seed))")
        var generator = SeededRandom(seed: seed)
        var acknowledged = Set<Int64>()

        for round in 0..<24 {
            let process = try RunningProcess(Binary.path, ["storage", "load", "--db", database, "--run", "\(round)", "--writers", "24"])
            XCTAssertNotNil(process.waitForLine(timeout: 30) { $0 == "ready" }, "round \(round): the writer did not start")
            // From its first acknowledgement (a loaded machine may take longer than the shortest while to get there),
            // let it write for a random while: 20-300 ms, i.e. tens to thousands of commits.
            XCTAssertNotNil(process.waitForLine(timeout: 30) { $0.hasPrefix("ack ") }, "round \(round): nothing was acknowledged")
            usleep(UInt32(20_000 + Int(generator.next() % 280_000)))
            process.signal(SIGKILL)
            XCTAssertEqual(process.wait(), 128 + SIGKILL, "round \(round)")
            let acks = process.output.compactMap { $0.hasPrefix("ack ") ? Int64($0.dropFirst(4)) : nil }
            acknowledged.formUnion(acks)

            let reopened = try Database(path: database)
            let present = Set(try reopened.fetchAll("SELECT id FROM probe_rows") { $0.int64(0) })
            let lost = acknowledged.subtracting(present)
            XCTAssertTrue(lost.isEmpty, "round \(round) (seed \(seed)): \(lost.count) acknowledged writes lost, e.g. \(Array(lost.prefix(5)))")
            XCTAssertGreaterThan(acks.count, 0, "round \(round) acknowledged nothing: the test would prove nothing")
        }
        XCTAssertGreaterThan(acknowledged.count, 1_000)
    }
}
