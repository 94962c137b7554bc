import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import XCTest

final class EventContractTests: XCTestCase {
    func name(_ text: String) -> Name { try! Name(text, what: "feature name") }

    func pageView() throws -> EventContract {
        try EventContract(fields: [
            "category": .init(type: .string, feature: name("last_category"), transform: nil),
            "ip": .init(type: .string, feature: name("network"), transform: .ipPrefix),
            "seen_at": .init(type: .timestamp, feature: name("last_seen_day"), transform: .bucketDay),
            "hour": .init(type: .timestamp, feature: name("last_seen_hour"), transform: .bucketHour),
            "geo": .init(type: .string, feature: name("country"), transform: .coarseGeo),
            "amount": .init(type: .number, feature: name("last_amount"), transform: nil),
            "member": .init(type: .bool, feature: name("is_member"), transform: nil),
            "email": .init(type: .string, feature: nil, transform: .drop, identity: true),
            "user_agent": .init(type: .string, feature: nil, transform: .drop),
        ])
    }

    func test_minimize_appliesEachTransformAndDropsWhatIsNotKept() throws {
        let updates = try pageView().minimize([
            "category": .string("boots"), "ip": .string("203.0.113.77"), "seen_at": .string("2026-11-22T23:30:00-02:00"),
            "hour": .string("2026-11-22T10:42:17Z"), "geo": .string("de-by/Munich"), "amount": .number(42.5), "member": .bool(true),
            "email": .string("anna@example.com"), "user_agent": .string("Mozilla/5.0"),
        ])
        let stored = Dictionary(uniqueKeysWithValues: updates.map { ($0.feature.rawValue, $0.value) })
        XCTAssertEqual(stored, [
            "last_category": .string("boots"), "network": .string("203.0.113.0/24"), "last_seen_day": .string("2026-11-23"),
            "last_seen_hour": .string("2026-11-22T10:00Z"), "country": .string("DE"), "last_amount": .number(42.5),
            "is_member": .bool(true),
        ])
    }

    func test_minimize_leavesAbsentAndNullFieldsAlone() throws {
        let updates = try pageView().minimize(["category": .string("hats"), "amount": .null])
        XCTAssertEqual(updates.map(\.feature.rawValue), ["last_category"])
    }

    func test_minimize_refusesUnknownFieldsByName_butNeverEchoesAnIdentifier() throws {
        let contract = try pageView()
        XCTAssertThrowsError(try contract.minimize(["category": .string("x"), "referrer": .string("y"), "zip": .number(1),
                                                    "bob@example.com": .bool(true)])) { error in
            XCTAssertEqual(error as? EventContract.Rejection, .unknownFields(named: ["referrer", "zip"], unnamed: 1))
        }
    }

    func test_minimize_refusesIdentifiersOutsideIdentityFields() throws {
        let contract = try pageView()
        for text in ["anna@example.com", "+49 151 1234567", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00"] {
            XCTAssertThrowsError(try contract.minimize(["category": .string(text)]), text) { error in
                guard case .piiDetected(let field, _) = error as? EventContract.Rejection else { return XCTFail("\(error)") }
                XCTAssertEqual(field, "category")
            }
        }
        // A transformed field is checked before its transform: the raw value never passes.
        XCTAssertThrowsError(try contract.minimize(["geo": .string("DE anna@example.com")]))
    }

    func test_minimize_refusesWrongTypesAndValues() throws {
        let contract = try pageView()
        let cases: [([String: EventContract.Value], EventContract.Rejection)] = [
            (["amount": .string("12")], .typeMismatch(field: "amount", expected: .number)),
            (["member": .number(1)], .typeMismatch(field: "member", expected: .bool)),
            (["category": .structured], .typeMismatch(field: "category", expected: .string)),
            (["seen_at": .string("yesterday")], .invalidValue(field: "seen_at", reason: "must be an RFC 3339 timestamp")),
            (["ip": .string("not-an-ip")], .invalidValue(field: "ip", reason: "must be an IPv4 or IPv6 address")),
            (["geo": .string("Germany")], .invalidValue(field: "geo", reason: "must start with an ISO 3166-1 country code")),
        ]
        for (event, expected) in cases {
            XCTAssertThrowsError(try contract.minimize(event)) { XCTAssertEqual($0 as? EventContract.Rejection, expected) }
        }
    }

    func test_contract_refusesDefinitionsThatCannotMinimize() {
        let invalid: [[String: EventContract.Field]] = [
            ["a": .init(type: .string, feature: name("f"), transform: .bucketDay)],
            ["a": .init(type: .timestamp, feature: name("f"), transform: .ipPrefix)],
            ["a": .init(type: .string, feature: nil, transform: nil)],
            ["a": .init(type: .string, feature: name("f"), transform: .drop)],
            ["a": .init(type: .string, feature: name("f"), transform: nil, identity: true)],
            ["a": .init(type: .string, feature: name("f"), transform: nil), "b": .init(type: .string, feature: name("f"), transform: nil)],
            ["1a": .init(type: .string, feature: nil, transform: .drop)],
            [:],
        ]
        for fields in invalid { XCTAssertThrowsError(try EventContract(fields: fields), "\(fields)") }
    }
}

final class CoverageTests: XCTestCase {
    let purpose = try! Purpose("product_recs")

    func grant(expiresAt: Int64?) -> [Purpose: ActiveConsent] {
        [purpose: ActiveConsent(purpose: purpose, basis: .consent, grantedAt: Timestamp(seconds: 0),
                                expiresAt: expiresAt.map(Timestamp.init(seconds:)), receiptID: "rc_1")]
    }

    func test_coverage_followsThePolicyBasisThenTheGrant() {
        let now = Timestamp(seconds: 100)
        XCTAssertEqual(ConsentFolding.coverage(of: purpose, grants: grant(expiresAt: nil), policyBasis: nil, now: now), .none,
                       "a purpose the policy does not allow here is never covered")
        XCTAssertEqual(ConsentFolding.coverage(of: purpose, grants: [:], policyBasis: .legitimateInterest, now: now),
                       .basis(.legitimateInterest))
        XCTAssertEqual(ConsentFolding.coverage(of: purpose, grants: [:], policyBasis: .consent, now: now), .none)
        XCTAssertEqual(ConsentFolding.coverage(of: purpose, grants: grant(expiresAt: 101), policyBasis: .consent, now: now).receiptID, "rc_1")
        XCTAssertEqual(ConsentFolding.coverage(of: purpose, grants: grant(expiresAt: 100), policyBasis: .consent, now: now), .none,
                       "a grant is over at its expiry")
    }
}
