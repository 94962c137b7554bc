import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// Black-box, against the built binary: what reaches the node before its
/// body is read, request ids, HEAD, and JSON bodies Foundation would accept.
final class HTTPAdmissionTests: NodeTestCase {
    /// The node's resident memory (VmRSS), in bytes.
    private func residentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(node.process.pid)/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        let kilobytes = try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kilobytes * 1_024
    }

    /// 100 connections claim 8 MiB bodies — to /healthz (which reads none)
    /// and to a /v1 route without a token — and send 2 MiB of it each, holding
    /// the rest back. Before head admission the node buffered every byte
    /// (200 MiB here). Bound: the node's RSS grows by less than 64 MiB, and
    /// /healthz keeps answering throughout.
    func test_largeBodiesWithoutAToken_leaveTheNodesMemoryBounded() async throws {
        try startNode()
        for _ in 0..<20 { _ = try await node.call("GET", "/healthz", token: nil) }
        let baseline = try residentBytes()
        let claimed = 8 * 1_024 * 1_024
        let sent = [UInt8](repeating: UInt8(ascii: "x"), count: 2 * 1_024 * 1_024)
        let heads = ["GET /healthz HTTP/1.1\r\nHost: n\r\nContent-Length: \(claimed)\r\n\r\n",
                     "POST /v1/subjects HTTP/1.1\r\nHost: n\r\nContent-Type: application/json\r\nContent-Length: \(claimed)\r\n\r\n"]
        let connections = try (0..<100).map { _ in try node.rawConnection(receiveTimeoutSeconds: 5) }
        let group = DispatchGroup()
        for (index, connection) in connections.enumerated() {
            group.enter()
            Thread {
                defer { group.leave() }
                // The node answers from the head and drops the rest (or closes).
                _ = connection.send(heads[index % 2]) && connection.send(sent)
            }.start()
        }
        var peak = baseline
        var healthy = 0
        let deadline = Date().addingTimeInterval(30)
        while group.wait(timeout: .now() + 0.05) == .timedOut && Date() < deadline {
            peak = max(peak, try residentBytes())
            if try await node.call("GET", "/healthz", token: nil).status == 200 { healthy += 1 }
        }
        for _ in 0..<10 {
            peak = max(peak, try residentBytes())
            let health = try await node.call("GET", "/healthz", token: nil)
            XCTAssertEqual(health.status, 200, "/healthz answers while attacked")
            healthy += 1
        }
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success, "every sender finished (refused, its body drained or the connection closed)")
        XCTAssertGreaterThan(healthy, 0)
        let growth = peak - baseline
        XCTAssertLessThan(growth, 64 * 1_024 * 1_024, "RSS grew by \(growth / 1_048_576) MiB under 100 unauthenticated 8 MiB claims")

        // The same claims, answered: 413 from the head for /healthz, 401 for the route without a token.
        for (head, status) in zip(heads, [413, 401]) {
            let connection = try node.rawConnection()
            connection.send(head)
            XCTAssertEqual(try connection.readResponse().status, status, head)
        }
        withExtendedLifetime(connections) {}
    }

    func test_aRequestIDThatLooksLikeAPhoneNumber_isReplaced_inTheResponseTheLogAndTheAudit() async throws {
        try startNode()
        let phone = "004915177665544"
        let sane = "trace-\(UUID().uuidString.prefix(8).lowercased())"
        let body = #"{"identifier":{"kind":"email","value":"rid@example.com"},"country":"DE"}"#
        let replaced = try await node.call("POST", "/v1/subjects", token: token("ingest"), json: body, headers: ["X-Request-Id": phone])
        XCTAssertEqual(replaced.status, 201, replaced.text)
        let replacement = try XCTUnwrap(replaced.headers["x-request-id"])
        XCTAssertNotEqual(replacement, phone)
        let kept = try await node.call("POST", "/v1/subjects", token: token("ingest"), json: body, headers: ["X-Request-Id": sane])
        XCTAssertEqual(kept.headers["x-request-id"], sane, "a sane id is kept")

        let audit = try await auditEvents()
        let requestIDs = audit.compactMap { $0["request_id"] as? String }
        XCTAssertTrue(requestIDs.contains(replacement), "the audit carries the replacement")
        XCTAssertTrue(requestIDs.contains(sane))
        let auditText = try await node.call("GET", "/v1/audit?after=0&limit=1000", token: token("privacy_officer")).text
        XCTAssertFalse(auditText.contains(phone))
        node.stop()
        XCTAssertTrue(node.logLines.contains { $0.contains(replacement) }, "the access log carries the replacement")
        XCTAssertFalse(node.logLines.contains { $0.contains(phone) }, "the log never carries the sent value")
    }

    /// Every GET route of docs/openapi.yaml answers HEAD with the GET's
    /// status and headers and no body, but the one whose GET changes state
    /// (the re-identification release): 405, `Allow: GET`.
    func test_head_isServedOnEveryGetRoute() async throws {
        let notServingHead: Set = ["/v1/reidentifications/{id}"]
        try startNode()
        let pid = try await register(email: "head@example.com")
        let specPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml").path
        let paths = OpenAPITests.operations(inSpec: try String(contentsOfFile: specPath, encoding: .utf8))
            .filter { $0.hasPrefix("GET ") }.map { String($0.dropFirst(4)) }
        XCTAssertGreaterThan(paths.count, 10)
        let roles = ["privacy_officer", "serve", "analyst", "admin", "ingest"]
        for pattern in paths {
            let path = pattern.replacingOccurrences(of: "{pid}", with: pid)
                .replacingOccurrences(of: "{name}", with: "unknown_name").replacingOccurrences(of: "{id}", with: "unknown-id")
            // The role that may call it (or the last refusal), as GET would answer.
            var chosen: (token: String?, get: NodeProcess.Response)?
            for role in [nil] + roles.map(Optional.some) {
                let token = role.map(token)
                let get = try await node.call("GET", path, token: token)
                chosen = (token, get)
                if ![401, 403].contains(get.status) { break }
            }
            let (bearer, get) = try XCTUnwrap(chosen)
            let connection = try node.rawConnection()
            let authorization = bearer.map { "Authorization: Bearer \($0)\r\n" } ?? ""
            connection.send("HEAD \(path) HTTP/1.1\r\nHost: n\r\n\(authorization)\r\nGET /healthz HTTP/1.1\r\nHost: n\r\n\r\n")
            let head = try connection.readResponseHead()
            if notServingHead.contains(pattern) {
                XCTAssertEqual(head.status, 405, "HEAD \(pattern)")
                XCTAssertEqual(head.header("allow"), "GET", "HEAD \(pattern)")
                XCTAssertEqual(try connection.readResponse().text, #"{"status":"ok"}"#, "HEAD \(pattern) sent no body")
                continue
            }
            XCTAssertEqual(head.status, get.status, "HEAD \(pattern)")
            XCTAssertEqual(head.header("content-type"), get.contentType, "HEAD \(pattern)")
            XCTAssertNotNil(head.header("content-length"), "HEAD \(pattern)")
            if get.headers["content-length"].flatMap(Int.init) == get.body.count, !pattern.hasPrefix("/v1/audit"), pattern != "/metrics" {
                XCTAssertEqual(head.header("content-length"), String(get.body.count), "HEAD \(pattern)")
            }
            XCTAssertEqual(try connection.readResponse().text, #"{"status":"ok"}"#, "HEAD \(pattern) sent no body")
        }
    }

    /// GET and DELETE read no body: a body declared to one is 413 from the head.
    func test_aBodySentToADelete_is413FromTheHead() async throws {
        try startNode()
        let pid = try await register(email: "delete-body@example.com")
        let connection = try node.rawConnection()
        connection.send("DELETE /v1/collections/none/vectors/\(pid) HTTP/1.1\r\nHost: n\r\nAuthorization: Bearer \(token("ingest"))\r\n"
                        + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        let response = try connection.readResponse()
        XCTAssertEqual(response.status, 413, response.text)
        XCTAssertTrue(response.text.contains("body_too_large"), response.text)
        // Without a body the route answers as usual.
        assertProblem(try await node.call("DELETE", "/v1/collections/none/vectors/\(pid)", token: token("ingest")), 404,
                      "unknown_collection")
    }

    /// Duplicate keys are 400 `duplicate_key` naming the key; a number a
    /// field cannot hold is 422 naming the field (not "not valid JSON").
    func test_duplicateKeysAndNumbersThatDoNotFit_areNamed() async throws {
        try startNode()
        let duplicate = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                            json: #"{"identifier":{"kind":"email","value":"dup@example.com"},"country":"DE","c\u006funtry":"US"}"#)
        assertProblem(duplicate, 400, "duplicate_key")
        XCTAssertTrue((duplicate.json["detail"] as? String ?? "").contains("country"), duplicate.text)
        XCTAssertFalse(duplicate.text.contains("dup@example.com"))

        let collection = try await node.call("PUT", "/v1/collections/big", token: token("admin"),
                                             json: #"{"dimension":99999999999999999999,"metric":"cosine","purpose":"product_recs"}"#)
        assertProblem(collection, 422, "number_out_of_range")
        XCTAssertTrue((collection.json["detail"] as? String ?? "").hasPrefix("dimension"), collection.text)
        XCTAssertFalse(collection.text.contains("99999"))
    }
}
