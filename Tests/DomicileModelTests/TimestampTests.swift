import DomicileModel
import XCTest

final class TimestampTests: XCTestCase {
    func test_timestamp_formatsRFC3339InUTC() {
        XCTAssertEqual(Timestamp(milliseconds: 0).rfc3339, "1970-01-01T00:00:00Z")
        XCTAssertEqual(Timestamp(milliseconds: 1_795_334_400_123).rfc3339, "2026-11-22T08:00:00.123Z")
        XCTAssertEqual(Timestamp(milliseconds: 951_782_400_000).rfc3339, "2000-02-29T00:00:00Z")
        XCTAssertEqual(Timestamp(milliseconds: -1_000).rfc3339, "1969-12-31T23:59:59Z")
    }

    func test_timestamp_parsesOffsetsAndFractions() throws {
        XCTAssertEqual(try Timestamp(rfc3339: "2026-11-22T08:00:00.123Z").milliseconds, 1_795_334_400_123)
        XCTAssertEqual(try Timestamp(rfc3339: "2026-11-22T09:00:00+01:00").milliseconds, 1_795_334_400_000)
        XCTAssertEqual(try Timestamp(rfc3339: "2026-11-22T03:30:00-04:30").milliseconds, 1_795_334_400_000)
        XCTAssertEqual(try Timestamp(rfc3339: "2026-11-22t08:00:00.1234567z").milliseconds, 1_795_334_400_123)
        XCTAssertEqual(try Timestamp(rfc3339: "2026-11-22T08:00:00.5Z").milliseconds, 1_795_334_400_500)
    }

    func test_timestamp_roundTripsOverCenturies() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let value = Int64.random(in: -2_208_988_800_000...4_102_444_800_000, using: &generator)
            XCTAssertEqual(try Timestamp(rfc3339: Timestamp(milliseconds: value).rfc3339).milliseconds, value)
        }
    }

    func test_timestamp_rejectsInvalidDates() {
        for bad in ["", "2026-11-22", "2026-11-22T08:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                    "2025-02-29T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T08:60:00Z", "2026-11-22T08:00:00.Z",
                    "2026-11-22T08:00:00+0100", "2026-11-22T08:00:00Zjunk", "26-11-22T08:00:00Z"] {
            XCTAssertThrowsError(try Timestamp(rfc3339: bad), bad)
        }
    }
}
