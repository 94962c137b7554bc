@testable import DomicileClient
@testable import DomicileNet
import XCTest

/// Which nodes a call tries, in order, and how a response becomes a problem.
final class RoutingTests: XCTestCase {
    func address(_ port: UInt16) -> SocketAddress { try! SocketAddress(host: "127.0.0.1", port: port) }

    func test_candidates_areTheLearnedRegionNodesFirst_thenTheSeedsFromTheOneThatAnswered() {
        let routing = Routing(seeds: [address(1), address(2), address(3)])
        XCTAssertEqual(routing.candidates(for: nil), [address(1), address(2), address(3)])
        routing.answered(address(2))
        XCTAssertEqual(routing.candidates(for: "us"), [address(2), address(3), address(1)], "nothing learned about us yet")
        routing.learn(region: "us", nodes: [address(9), address(3)])
        XCTAssertEqual(routing.candidates(for: "us"), [address(9), address(3), address(2), address(1)], "each node once")
        XCTAssertEqual(routing.candidates(for: "eu"), [address(2), address(3), address(1)])
        routing.answered(address(9))
        XCTAssertEqual(routing.candidates(for: nil).first, address(2), "a learned node is not a seed")
    }

    func test_aPIDsRegion_isItsThirdPart() {
        XCTAssertEqual(Routing.region(ofPID: "psn:v1:us:AAAA"), "us")
        XCTAssertNil(Routing.region(ofPID: "not-a-pid"))
        XCTAssertNil(Routing.region(ofPID: "psn:v1::AAAA"))
    }

    func test_aProblemDocument_isTyped_andAnyOtherBodyStillGivesStatusAndRequestID() {
        let body = #"{"type":"https://domicile.dev/problems/misdirected","title":"Misdirected Request","status":421,"detail":"d","#
            + #""code":"misdirected","home_region":"us","nodes":[{"name":"us-1","http":"127.0.0.1:7"}]}"#
        let problem = DomicileProblem(response: HTTPClientResponse(status: 421, headers: ["X-Request-Id": "r1"], body: Array(body.utf8)))
        XCTAssertEqual(problem.code, .misdirected)
        XCTAssertEqual(problem.homeRegion, "us")
        XCTAssertEqual(problem.nodes, [NodeLink(name: "us-1", http: "127.0.0.1:7")])
        XCTAssertEqual(problem.requestID, "r1")
        XCTAssertEqual(Set(problem.extensions.keys), ["home_region", "nodes"])

        let plain = DomicileProblem(response: HTTPClientResponse(status: 502, headers: ["Retry-After": "2"], body: Array("Bad Gateway".utf8)))
        XCTAssertEqual(plain.code.rawValue, "http_502")
        XCTAssertEqual(plain.title, HTTPStatus.reason(502))
        XCTAssertEqual(plain.retryAfterSeconds, 2)
    }

    func test_onlyWhatCannotHaveTakenEffectTwice_isRetried() {
        func problem(_ status: Int, _ code: ProblemCode) -> DomicileProblem {
            DomicileProblem(status: status, code: code, type: nil, title: "", detail: "", requestID: nil, retryAfterSeconds: nil, extensions: [:])
        }
        let append = DomicileClient.Call("POST", "/v1/subjects/p/consents", idempotent: false)
        let read = DomicileClient.Call("GET", "/v1/subjects/p")
        XCTAssertTrue(DomicileClient.mayRetry(problem(429, .rateLimited), append))
        XCTAssertTrue(DomicileClient.mayRetry(problem(503, .overloaded), append))
        XCTAssertFalse(DomicileClient.mayRetry(problem(503, .noQuorum), append), "the write may still take effect")
        XCTAssertTrue(DomicileClient.mayRetry(problem(503, .noQuorum), read))
        XCTAssertFalse(DomicileClient.mayRetry(problem(500, .internalError), read))
        XCTAssertFalse(DomicileClient.mayRetry(problem(422, .invalidRequest), read))
    }
}
