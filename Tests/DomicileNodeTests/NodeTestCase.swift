@testable import DomicileNode
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// Helpers shared by the end-to-end tests of one node.
class NodeTestCase: XCTestCase {
    var federation: FederationFixture!
    var node: NodeProcess!

    func startNode(regions: [String] = ["eu", "us"],
                   configure: @escaping (_ node: String, _ config: inout [String: Any]) -> Void = { _, _ in }) throws {
        federation = try FederationFixture(regions: regions, configure: configure)
        node = try federation.start("\(regions[0])-1")
    }

    override func tearDown() {
        node?.kill()
        super.tearDown()
    }

    func token(_ role: String) -> String { federation.token(role) }

    /// Registers `email` in `country` and returns its pid.
    func register(email: String, country: String = "DE") async throws -> String {
        let response = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                           json: #"{"identifier":{"kind":"email","value":"\#(email)"},"country":"\#(country)"}"#)
        XCTAssertTrue([200, 201].contains(response.status), response.text)
        return try XCTUnwrap(response.json["pid"] as? String)
    }

    @discardableResult
    func receipt(_ pid: String, _ action: String, _ purposes: [String], expiresAt: String? = nil,
                 collectedAt: String = "2026-01-01T00:00:00Z") async throws -> NodeProcess.Response {
        let list = purposes.map { "\"\($0)\"" }.joined(separator: ",")
        let expiry = expiresAt.map { #","expires_at":"\#($0)""# } ?? ""
        let purposesField = purposes.isEmpty ? "" : #","purposes":[\#(list)]"#
        return try await node.call("POST", "/v1/subjects/\(pid)/consents", token: token("ingest"),
                                   json: #"{"action":"\#(action)"\#(purposesField),"source":"test:e2e","collected_at":"\#(collectedAt)"\#(expiry)}"#)
    }

    func activePurposes(_ pid: String) async throws -> [String] {
        let response = try await node.call("GET", "/v1/subjects/\(pid)/consent", token: token("serve"))
        XCTAssertEqual(response.status, 200, response.text)
        return ((response.json["active"] as? [[String: Any]]) ?? []).compactMap { $0["purpose"] as? String }
    }

    /// Defines (or redefines) a feature as admin.
    @discardableResult
    func defineFeature(_ name: String, type: String, purpose: String, ttlSeconds: Int = 3_600,
                       file: StaticString = #filePath, line: UInt = #line) async throws -> NodeProcess.Response {
        let response = try await node.call("PUT", "/v1/feature-definitions/\(name)", token: token("admin"), json: """
            {"type":"\(type)","purpose":"\(purpose)","ttl_seconds":\(ttlSeconds),"classification":"behavioral"}
            """)
        XCTAssertTrue([200, 201].contains(response.status), response.text, file: file, line: line)
        return response
    }

    func writeFeatures(_ pid: String, _ values: String) async throws -> NodeProcess.Response {
        try await node.call("PUT", "/v1/subjects/\(pid)/features", token: token("ingest"), json: #"{"values":\#(values)}"#)
    }

    /// The served features of `purpose` and the withheld ones (name → reason).
    func readFeatures(_ pid: String, purpose: String, file: StaticString = #filePath,
                      line: UInt = #line) async throws -> (features: [String: Any], withheld: [String: String]) {
        let response = try await node.call("GET", "/v1/subjects/\(pid)/features?purpose=\(purpose)", token: token("serve"))
        XCTAssertEqual(response.status, 200, response.text, file: file, line: line)
        let withheld = (response.json["withheld"] as? [[String: Any]] ?? []).reduce(into: [String: String]()) { result, entry in
            result[entry["name"] as? String ?? "?"] = entry["reason"] as? String
        }
        return (response.json["features"] as? [String: Any] ?? [:], withheld)
    }

    func auditEvents(after seq: Int = 0) async throws -> [[String: Any]] {
        let page = try await node.call("GET", "/v1/audit?after=\(seq)&limit=1000", token: token("privacy_officer"))
        return page.json["events"] as? [[String: Any]] ?? []
    }

    /// Asserts an RFC 9457 problem document with Domicile's stable code.
    func assertProblem(_ response: NodeProcess.Response, _ status: Int, _ code: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(response.status, status, response.text, file: file, line: line)
        XCTAssertEqual(response.contentType, "application/problem+json", file: file, line: line)
        let json = response.json
        XCTAssertEqual(json["code"] as? String, code, response.text, file: file, line: line)
        XCTAssertEqual(json["status"] as? Int, status, file: file, line: line)
        XCTAssertNotNil(json["title"] as? String, file: file, line: line)
        XCTAssertNotNil(json["detail"] as? String, file: file, line: line)
        XCTAssertEqual(json["type"] as? String, "https://domicile.dev/problems/\(code)", file: file, line: line)
        XCTAssertNotNil(response.headers["x-request-id"], file: file, line: line)
    }

    static func rfc3339(secondsFromNow seconds: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date().addingTimeInterval(seconds))
    }
}

/// Runs `body` against an in-process node, then shuts the node down —
/// awaited, whether `body` returned or threw — so nothing of it (its log
/// writer, its store) outlives the descriptors and files the test closes.
func shuttingDown<T>(_ node: Node, after body: () async throws -> T) async throws -> T {
    do {
        let value = try await body()
        await node.shutdown(graceMilliseconds: 0)
        return value
    } catch {
        await node.shutdown(graceMilliseconds: 0)
        throw error
    }
}
