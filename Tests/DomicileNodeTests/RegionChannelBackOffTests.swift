@testable import DomicileNode
import DomicileModel
import XCTest

final class RegionChannelBackOffTests: XCTestCase {
    func test_delay_doublesToItsCap_jitteredInTheUpperHalf_replayableFromASeed() {
        let backOff = ReconnectBackOff(baseMilliseconds: 100, maxMilliseconds: 5_000)
        var random: any RandomNumberGenerator = SeededRandom(seed: 3)
        var again: any RandomNumberGenerator = SeededRandom(seed: 3)
        var seen = Set<Int64>()
        for failures in 1...30 {
            let ceiling = min(5_000, Int64(100) << Int64(min(failures - 1, 20)))
            let delay = backOff.delay(afterFailures: failures, using: &random)
            XCTAssertTrue((ceiling / 2)...ceiling ~= delay, "failure \(failures): \(delay) ms in [\(ceiling / 2), \(ceiling)]")
            XCTAssertEqual(backOff.delay(afterFailures: failures, using: &again), delay, "the same seed, the same waits")
            seen.insert(delay)
        }
        XCTAssertGreaterThan(seen.count, 20, "jittered, not a fixed schedule")
    }
}
