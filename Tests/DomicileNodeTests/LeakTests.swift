import DomicileTestSupport
import Foundation
import XCTest

/// No raw identifier in the database files (WAL included), the logs,
/// /metrics or any error body, after a workload built around canary values.
final class LeakTests: NodeTestCase {
    func test_noRawIdentifierLeavesAnywhere() async throws {
        try startNode()
        let canary = "canary" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        let email = "\(canary)@leak-test.example"
        let phone = "+49151" + String(Int.random(in: 1_000_000...9_999_999))
        let customer = "CRM-\(canary.uppercased())"
        var errorBodies: [String] = []

        for (kind, value) in [("email", email), ("phone", phone), ("customer_id", customer)] {
            let pid = try await {
                let response = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                                   json: #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"},"country":"DE"}"#)
                XCTAssertEqual(response.status, 201, response.text)
                return response.json["pid"] as! String
            }()
            try await receipt(pid, "grant", ["product_recs"])
            _ = try await node.call("POST", "/v1/subjects/lookup", token: token("serve"),
                                    json: #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"}}"#)
            _ = try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve"))
            // Requests that fail while carrying the identifier.
            for body in [#"{"identifier":{"kind":"\#(kind)","value":"\#(value)"},"country":"US"}"#,
                         #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"},"country":"ZZ"}"#,
                         #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"}}"#,
                         #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"},"country":"DE","extra":"#,
                         #"{"identifier":{"kind":"\#(kind)","value":\#(value.count)},"country":"DE"}"#] {
                let response = try await node.call("POST", "/v1/subjects", token: token("ingest"), json: body)
                errorBodies.append(response.text)
            }
            errorBodies.append(try await node.call("POST", "/v1/subjects", token: token("serve"),
                                                   json: #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"},"country":"DE"}"#).text)
            errorBodies.append(try await node.call("POST", "/v1/subjects/lookup", token: token("serve"),
                                                   json: #"{"identifier":{"kind":"\#(kind)","value":"\#(value)x"}}"#).text)
        }
        errorBodies.append(try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                               json: #"{"identifier":{"kind":"email","value":"\#(canary)-broken@"},"country":"DE"}"#).text)
        errorBodies.append(try await node.call("GET", "/v1/subjects/\(canary)", token: token("serve")).text)
        let metrics = try await node.call("GET", "/metrics", token: nil).text
        node.stop()

        let needles = [canary, canary.uppercased(), email, phone, String(phone.dropFirst()), customer]
        func assertClean(_ haystack: [UInt8], _ place: String) {
            for needle in needles {
                XCTAssertFalse(contains(haystack, Array(needle.utf8)), "\(place) contains a raw identifier")
            }
        }
        let data = federation.dataDirectory("eu-1")
        let files = try FileManager.default.contentsOfDirectory(atPath: data)
        XCTAssertTrue(files.contains("node.sqlite"))
        for file in files { assertClean(Array(try Data(contentsOf: URL(fileURLWithPath: "\(data)/\(file)"))), file) }
        assertClean(Array(node.logLines.joined(separator: "\n").utf8), "the log")
        assertClean(Array(metrics.utf8), "/metrics")
        for body in errorBodies { assertClean(Array(body.utf8), "an error body: \(body.prefix(120))") }
        XCTAssertGreaterThan(node.logLines.count, 10, "the log was captured")
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == first && haystack[index..<(index + needle.count)].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}
