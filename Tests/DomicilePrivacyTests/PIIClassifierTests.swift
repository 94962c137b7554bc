import DomicilePrivacy
import XCTest

final class PIIClassifierTests: XCTestCase {
    func test_classifier_findsIdentifiersInText() {
        let positives: [(String, PIIClassifier.Kind)] = [
            ("anna.schmidt@example.de", .email), ("write to Bo+news@mail.example.com please", .email),
            ("+49 151 1234567", .phone), ("(415) 555-0142 x", .phone), ("+14155550142", .phone),
            ("4111 1111 1111 1111", .paymentCard), ("card 5500-0000-0000-0004", .paymentCard),
            ("DE89 3704 0044 0532 0130 00", .iban), ("gb82west12345698765432", .iban),
        ]
        for (text, kind) in positives { XCTAssertEqual(PIIClassifier.classify(text), kind, text) }
    }

    func test_classifier_leavesOrdinaryValuesAlone() {
        for text in ["shoes", "2026-11-22", "2026-11-22T10:00Z", "sku-1234", "order 12345", "DE", "203.0.113.0/24",
                     "@handle", "a@b", "4111 1111 1111 1112", "DE00 0000 0000 0000 0000 00", "v2.3.4", "42", "user@localhost"] {
            XCTAssertNil(PIIClassifier.classify(text), text)
        }
    }
}

final class TransformTests: XCTestCase {
    func test_transforms_minimizeBeforeStorage() throws {
        XCTAssertEqual(try Transform.bucketDay.apply(to: "2026-11-22T23:59:59+01:00"), "2026-11-22")
        XCTAssertEqual(try Transform.bucketHour.apply(to: "2026-11-22T10:42:17Z"), "2026-11-22T10:00Z")
        XCTAssertEqual(try Transform.ipPrefix.apply(to: "203.0.113.77"), "203.0.113.0/24")
        XCTAssertEqual(try Transform.ipPrefix.apply(to: "2001:db8:abcd:12:1::7"), "2001:db8:abcd::/48")
        XCTAssertEqual(try Transform.ipPrefix.apply(to: "::1"), "0:0:0::/48")
        XCTAssertEqual(try Transform.coarseGeo.apply(to: "DE-BE"), "DE")
        XCTAssertEqual(try Transform.coarseGeo.apply(to: "fr/Paris/75001"), "FR")
        XCTAssertNil(try Transform.drop.apply(to: "anything"))
    }

    func test_transforms_refuseInputOfTheWrongKind() {
        XCTAssertThrowsError(try Transform.bucketDay.apply(to: "yesterday"))
        XCTAssertThrowsError(try Transform.ipPrefix.apply(to: "300.1.2.3"))
        XCTAssertThrowsError(try Transform.ipPrefix.apply(to: "1.2.3"))
        XCTAssertThrowsError(try Transform.ipPrefix.apply(to: "1::2::3"))
        XCTAssertThrowsError(try Transform.coarseGeo.apply(to: "Germany"))
        XCTAssertThrowsError(try Transform.coarseGeo.apply(to: "D"))
    }

    func test_featureValue_roundTripsItsEncoding() {
        for value in [FeatureValue.number(-3.25), .number(.pi), .string("hello ✓"), .string(""), .bool(true), .bool(false)] {
            XCTAssertEqual(FeatureValue(encoded: value.encoded), value)
        }
        XCTAssertNil(FeatureValue(encoded: []))
        XCTAssertNil(FeatureValue(encoded: [9, 1]))
    }
}
