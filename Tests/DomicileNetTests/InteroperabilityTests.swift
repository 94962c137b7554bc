import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// Real third-party clients against the server: curl and CPython's http.client.
final class InteroperabilityTests: XCTestCase {
    func test_curl_getPostChunkedAndKeepAlive() async throws {
        guard let curl = ChildProcess.find("curl") else { throw XCTSkip("curl is not installed") }
        let fixture = try TestServer()
        let base = "http://127.0.0.1:\(fixture.port)"

        let health = try ChildProcess.run(curl, ["-sS", "-i", "\(base)/healthz"])
        XCTAssertEqual(health.status, 0)
        XCTAssertTrue(health.output.hasPrefix("HTTP/1.1 200 OK"), health.output)
        XCTAssertTrue(health.output.contains(#"{"status":"ok"}"#))

        let posted = try ChildProcess.run(curl, ["-sS", "-H", "Content-Type: application/json", "--data", #"{"name":"curl","count":3}"#, "\(base)/json"])
        XCTAssertEqual(posted.output, #"{"count":3,"name":"curl"}"#)

        let chunked = try ChildProcess.run(curl, ["-sS", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: text/plain",
                                                  "--data-binary", "chunked body from curl", "\(base)/echo"])
        XCTAssertEqual(chunked.output, "chunked body from curl")

        // Two URLs in one invocation reuse one connection.
        let reused = try ChildProcess.run(curl, ["-sS", "-v", "\(base)/items/1", "\(base)/items/2"], captureStandardError: true)
        XCTAssertTrue(reused.output.contains("item 1") && reused.output.contains("item 2"))
        XCTAssertTrue(reused.output.contains("Re-using existing connection") || reused.output.contains("Reusing existing connection"),
                      "curl kept the connection alive")

        let problem = try ChildProcess.run(curl, ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{content_type}", "\(base)/nope"])
        XCTAssertEqual(problem.output, "404 application/problem+json")
        await fixture.stop()
    }

    func test_pythonHTTPClient_keepAliveJSONAndChunkedUploads() async throws {
        guard let python = ChildProcess.find("python3") else { throw XCTSkip("python3 is not installed") }
        let fixture = try TestServer()
        let script = """
        import http.client, json, sys
        conn = http.client.HTTPConnection("127.0.0.1", \(fixture.port), timeout=5)
        conn.request("GET", "/healthz")
        first = conn.getresponse(); body = first.read()
        assert first.status == 200 and json.loads(body) == {"status": "ok"}, body
        sock = conn.sock
        for i in range(20):
            conn.request("POST", "/json", body=json.dumps({"name": "py", "count": i}), headers={"Content-Type": "application/json"})
            r = conn.getresponse(); data = json.loads(r.read())
            assert r.status == 200 and data == {"name": "py", "count": i}, data
        assert conn.sock is sock, "keep-alive: one socket for every request"
        conn.request("POST", "/echo", body=iter([b"chunk-one ", b"chunk-two"]), encode_chunked=True, headers={"Content-Type": "text/plain"})
        r = conn.getresponse(); assert r.read() == b"chunk-one chunk-two"
        conn.request("GET", "/missing")
        r = conn.getresponse(); problem = json.loads(r.read())
        assert r.status == 404 and r.getheader("Content-Type") == "application/problem+json" and problem["code"] == "not_found"
        assert r.getheader("X-Request-Id")
        print("python ok")
        """
        let result = try ChildProcess.run(python, ["-c", script], captureStandardError: true)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("python ok"), result.output)
        await fixture.stop()
    }
}
