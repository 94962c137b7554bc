@testable import DomicileClient
import XCTest

/// The back-off decision, without a clock: doubling, jitter over the upper
/// half, `Retry-After` as a floor, and the bounds.
final class RetryPolicyTests: XCTestCase {
    let policy = RetryPolicy(attemptsMax: 4, baseDelayMilliseconds: 100, delayMaxMilliseconds: 1_000)

    func test_backOff_doubles_isJitteredOverItsUpperHalf_andCapped() {
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 1, retryAfterSeconds: nil, jitter: 0), 50)
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 1, retryAfterSeconds: nil, jitter: 0.999), 99)
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 2, retryAfterSeconds: nil, jitter: 0), 100)
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 3, retryAfterSeconds: nil, jitter: 0.5), 300)
        let capped = RetryPolicy(attemptsMax: 100, baseDelayMilliseconds: 100, delayMaxMilliseconds: 1_000)
        XCTAssertEqual(capped.delayMilliseconds(afterAttempt: 60, retryAfterSeconds: nil, jitter: 0.999), 999)
    }

    func test_retryAfter_isAFloor_andALongerOneThanTheMaximumFailsTheCall() {
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 1, retryAfterSeconds: 1, jitter: 0.5), 1_000)
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 1, retryAfterSeconds: 0, jitter: 0), 50)
        XCTAssertNil(policy.delayMilliseconds(afterAttempt: 1, retryAfterSeconds: 2, jitter: 0))
        XCTAssertNil(policy.delayMilliseconds(afterAttempt: 1, retryAfterSeconds: Int64.max, jitter: 0))
    }

    func test_attempts_areBounded() {
        XCTAssertNotNil(policy.delayMilliseconds(afterAttempt: 3, retryAfterSeconds: nil, jitter: 0))
        XCTAssertNil(policy.delayMilliseconds(afterAttempt: 4, retryAfterSeconds: nil, jitter: 0))
    }

    func test_retryAfter_readsWholeSeconds_only() {
        XCTAssertEqual(RetryPolicy.retryAfterSeconds("3"), 3)
        XCTAssertEqual(RetryPolicy.retryAfterSeconds(" 1 "), 1)
        XCTAssertNil(RetryPolicy.retryAfterSeconds("Wed, 21 Oct 2026 07:28:00 GMT"))
        XCTAssertNil(RetryPolicy.retryAfterSeconds("-1"))
        XCTAssertNil(RetryPolicy.retryAfterSeconds(nil))
    }
}
