import DomicileModel
import XCTest

final class IdentifierTests: XCTestCase {
    func test_email_isTrimmedAndLowercased() throws {
        let identifier = try Identifier(kind: .email, raw: "  Alice.Smith+News@Example.COM\n")
        XCTAssertEqual(identifier.value, "alice.smith+news@example.com")
    }

    func test_email_rejectsWhatIsNotAnAddress() {
        for bad in ["", "alice", "alice@", "@example.com", "a@b", "a@@b.com", "a b@c.com", "a@b..com",
                    ".a@b.com", "a.@b.com", "a..b@c.com", "a@-b.com", "a@b.com-",
                    String(repeating: "a", count: 65) + "@b.com", "a@" + String(repeating: "b", count: 250) + ".com"] {
            XCTAssertThrowsError(try Identifier(kind: .email, raw: bad), bad)
        }
    }

    func test_phone_normalizesToE164() throws {
        XCTAssertEqual(try Identifier(kind: .phone, raw: "+49 (151) 123-456.78").value, "+4915112345678")
        XCTAssertEqual(try Identifier(kind: .phone, raw: " +1 415 555 0100 ").value, "+14155550100")
    }

    func test_phone_rejectsNonE164() {
        for bad in ["015112345678", "+0151123456", "+1 415 555 0100 ext 3", "+12", "+1234567890123456", "++4915112345678",
                    "+49a151", "49+151123456"] {
            XCTAssertThrowsError(try Identifier(kind: .phone, raw: bad), bad)
        }
    }

    func test_customerID_isOpaqueButBounded() throws {
        XCTAssertEqual(try Identifier(kind: .customerID, raw: " CRM-0042 ").value, " CRM-0042 ")
        XCTAssertThrowsError(try Identifier(kind: .customerID, raw: ""))
        XCTAssertThrowsError(try Identifier(kind: .customerID, raw: String(repeating: "x", count: 129)))
        XCTAssertThrowsError(try Identifier(kind: .customerID, raw: "a\u{0}b"))
    }

    func test_errors_neverContainTheValue() {
        let secret = "very.secret.person@nowhere"
        do {
            _ = try Identifier(kind: .email, raw: secret)
            XCTFail("should not parse")
        } catch {
            XCTAssertFalse("\(error)".contains("secret"))
        }
        let identifier = try? Identifier(kind: .email, raw: "visible@example.com")
        XCTAssertFalse(String(describing: identifier).contains("visible"))
    }

    func test_hmacInput_separatesKinds() throws {
        let asCustomerID = try Identifier(kind: .customerID, raw: "a@example.com")
        let asEmail = try Identifier(kind: .email, raw: "a@example.com")
        var inputs: [[UInt8]] = []
        asCustomerID.withHMACInput { inputs.append(Array($0)) }
        asEmail.withHMACInput { inputs.append(Array($0)) }
        XCTAssertNotEqual(inputs[0], inputs[1])
        XCTAssertEqual(inputs[1], [IdentifierKind.email.tag, 0] + Array("a@example.com".utf8))
    }
}
