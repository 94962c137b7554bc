@testable import DomicileNode
import XCTest

/// Which receipt sources are kept as sent, and what replaces the others.
final class ReceiptSourceTests: XCTestCase {
    func test_plainSources_areKept() {
        for source in ["web-portal:v2", "cmp:onetrust", "browser:gpc", "C-4711", String(repeating: "a", count: ReceiptSource.bytesMax)] {
            XCTAssertNil(ReceiptSource.flaw(of: source), source)
        }
    }

    func test_identifiers_areNamedAsSuch_evenWhenTheyBreakTheCharacterRules() {
        XCTAssertEqual(ReceiptSource.flaw(of: "+4915177665544"), .identifier(.phone))
        XCTAssertEqual(ReceiptSource.flaw(of: "crm:+4915177665544"), .identifier(.phone))
        XCTAssertEqual(ReceiptSource.flaw(of: "jane.doe@example.com"), .identifier(.email))
    }

    func test_textBreakingTheRules_isInvalid() {
        let tooLong = String(repeating: "a", count: ReceiptSource.bytesMax + 1)
        for source in ["", tooLong, "Browser GPC (Sec-GPC: 1)", "caf\u{e9}", "redacted:pii_detected", "redacted:"] {
            XCTAssertEqual(ReceiptSource.flaw(of: source), .invalid, source)
        }
    }

    func test_markers_keepTheRulesOfASource_butForTheReservedPrefix() {
        for flaw in [ReceiptSource.Flaw.invalid, .identifier(.iban)] {
            XCTAssertTrue(flaw.marker.hasPrefix(ReceiptSource.markerPrefix))
            let unprefixed = "node:" + flaw.marker.dropFirst(ReceiptSource.markerPrefix.count)
            XCTAssertNil(ReceiptSource.flaw(of: unprefixed), flaw.marker)
        }
        XCTAssertEqual(ReceiptSource.Flaw.identifier(.email).marker, "redacted:pii_detected")
        XCTAssertEqual(ReceiptSource.Flaw.invalid.marker, "redacted:invalid_request")
    }
}
