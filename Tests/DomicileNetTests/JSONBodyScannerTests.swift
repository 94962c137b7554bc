import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

final class JSONBodyScannerTests: XCTestCase {
    private func scan(_ text: String) -> JSONBodyScanner.Finding? { JSONBodyScanner.scan(Array(text.utf8)) }

    func test_scanner_findsRepeatedKeys_afterUnescaping() {
        XCTAssertEqual(scan(#"{"country":"DE","country":"US"}"#), .duplicate(path: "country"))
        XCTAssertEqual(scan(#"{"a":1,"\u0061":2}"#), .duplicate(path: "a"), #""a" and "\u0061" are one key"#)
        XCTAssertEqual(scan(#"{"\ud83d\ude00":1,"😀":2}"#), .duplicate(path: "…"), "a surrogate pair is the character")
        XCTAssertEqual(scan(#"{"a\"b":1,"a\u0022b":2}"#), .duplicate(path: "…"))
        XCTAssertEqual(scan(#"{"identifier":{"kind":"email","kind":"phone"}}"#), .duplicate(path: "identifier.kind"))
        XCTAssertEqual(scan(#"{"items":[{"n":1},{"n":2,"n":3}]}"#), .duplicate(path: "items[1].n"))
    }

    func test_scanner_acceptsDistinctKeys_valuesThatLookLikeKeys_andSiblings() {
        XCTAssertNil(scan(#"{"a":"a","b":{"a":1},"c":[{"a":1},{"a":2}]}"#))
        XCTAssertNil(scan(#"{"a":"}\",\"a\":{","b":["a","a"]}"#), "strings with braces, quotes and commas are values")
        XCTAssertNil(scan(#"{"a":1,"A":2,"a ":3}"#))
        XCTAssertNil(scan(#"[1,2,{"x":[]},"x"]"#))
    }

    func test_scanner_refusesDeepNesting_andLeavesMalformedInputToTheDecoder() {
        XCTAssertEqual(scan(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)), .tooDeep)
        XCTAssertNil(scan(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        for malformed in [#"{"a":"#, #"{"a\"#, #"{"\u12"#, #"{"\ud800":1}"#, "}}]]", #"{"a":1,"a"#, "\u{0}", #"{"a\x":1}"#] {
            XCTAssertNil(scan(malformed), malformed)
        }
    }

    /// Through the server: 400 `duplicate_key` naming the key; a number its
    /// field cannot hold is 422 naming the field, never echoing the number.
    func test_decoding_refusesDuplicateKeys_andNamesNumbersThatDoNotFit() async throws {
        let fixture = try TestServer()
        let connection = try RawConnection(port: fixture.port)
        func post(_ body: String) throws -> (status: Int, code: String?, detail: String) {
            connection.send("POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let response = try connection.readResponse()
            let json = (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
            return (response.status, json["code"] as? String, json["detail"] as? String ?? response.text)
        }
        let duplicate = try post(#"{"name":"a","count":1,"n\u0061me":"b"}"#)
        XCTAssertEqual(duplicate.status, 400)
        XCTAssertEqual(duplicate.code, "duplicate_key")
        XCTAssertTrue(duplicate.detail.contains("name"), duplicate.detail)

        for (body, field) in [(#"{"name":"a","count":99999999999999999999}"#, "count"),
                              (#"{"name":"a","count":1e400}"#, "count"),
                              (#"{"count":1.5,"name":"a"}"#, "count"),
                              (#"{"name":"a","count":-1e400}"#, "count")] {
            let response = try post(body)
            XCTAssertEqual(response.status, 422, body)
            XCTAssertEqual(response.code, "number_out_of_range", body)
            XCTAssertTrue(response.detail.hasPrefix(field), response.detail)
            XCTAssertFalse(response.detail.contains("999") || response.detail.contains("400") || response.detail.contains("1.5"),
                           "the number is not echoed: \(response.detail)")
        }
        XCTAssertEqual(try post("{not json").code, "invalid_json")
        XCTAssertEqual(try post(#"{"name":"a","count":2}"#).status, 200)
        await fixture.stop()
    }
}
