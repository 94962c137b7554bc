import DomicileClient
import DomicileTestSupport
import DomicileNet
import Foundation
import XCTest

/// What the client does besides the calls themselves: typed problems,
/// failover between seeds, following 421 to the home region, and retries
/// that honour `Retry-After`.
final class ClientRoutingTests: ClientTestCase {
    func test_aBadRequest_isATypedProblem_withItsStableCode() async throws {
        try startNode()
        let serve = try client("serve")
        let malformed = await problem { _ = try await serve.subject("not-a-pid") }
        XCTAssertEqual(malformed?.status, 400)
        XCTAssertEqual(malformed?.code, .invalidPID)
        XCTAssertEqual(malformed?.type, "https://domicile.dev/problems/invalid_pid")
        XCTAssertFalse(malformed?.title.isEmpty ?? true)
        XCTAssertFalse(malformed?.detail.isEmpty ?? true)
        XCTAssertNotNil(malformed?.requestID, "the node's request id, to find its log and audit lines")

        let ingest = serve.withToken(federation.token("ingest"))
        let invalid = await problem { _ = try await ingest.register(.email("not an address"), home: .country("DE")) }
        XCTAssertEqual(invalid?.status, 422)
        XCTAssertEqual(invalid?.code, .invalidIdentifier)
        XCTAssertFalse(invalid?.detail.contains("not an address") ?? true, "the detail never holds the identifier")
        let region = await problem { _ = try await ingest.register(.email("a@example.com"), home: .country("ZZ")) }
        XCTAssertEqual(region?.code, .unknownRegion)

        let stranger = serve.withToken("not-a-token")
        let unauthorized = await problem { _ = try await stranger.cluster() }
        XCTAssertEqual(unauthorized?.status, 401)
        XCTAssertEqual(unauthorized?.code, .unauthorized)
        let forbidden = await problem { _ = try await serve.audit() }
        XCTAssertEqual(forbidden?.code, .forbidden)
    }

    /// A client that does not trust the nodes' CA (or does not speak TLS) gets nothing from them.
    func test_aClientWithoutTheClusterCA_isRefused() async throws {
        try startNode()
        let seed = nodes["eu-1"]!.address.description
        let stranger = TemporaryDirectory("domicile-stranger-ca")
        try CertificateIssuer.makeAuthority(commonName: "Stranger CA").write(certificateTo: stranger.file("ca.pem"), keyTo: stranger.file("ca-key.pem"))
        for caFile in [stranger.file("ca.pem"), nil] {
            var configuration = DomicileClient.Configuration(seeds: [seed], token: federation.token("admin"), caFile: caFile)
            configuration.attemptsMax = 1
            do {
                _ = try await DomicileClient(configuration: configuration).cluster()
                XCTFail("answered a client with CA \(caFile ?? "none")")
            } catch let error as DomicileClientError {
                guard case .unreachable(let reason) = error else { return XCTFail("\(error)") }
                if caFile != nil { XCTAssertTrue(reason.contains("certificate refused"), reason) }
            }
        }
    }

    func test_aSeedThatRefusesConnections_isSkipped_forTheNext() async throws {
        try startNode()
        let closed = try FreePorts.consecutive(1)
        let client = try DomicileClient(configuration: .init(seeds: ["127.0.0.1:\(closed)", nodes["eu-1"]!.address.description],
                                                             token: federation.token("admin"), caFile: federation.caFile))
        let answeredBy = try await client.cluster().node.name
        XCTAssertEqual(answeredBy, "eu-1")
        // Not even a POST, which is never sent twice, is lost: nothing reached the closed port.
        let registered = try await client.withToken(federation.token("ingest")).register(.email("f@example.com"), home: .region("eu"))
        XCTAssertTrue(registered.created)

        let nowhere = try DomicileClient(configuration: .init(seeds: ["127.0.0.1:\(closed)"], token: federation.token("admin")))
        do {
            _ = try await nowhere.cluster()
            XCTFail("no node to answer")
        } catch let error as DomicileClientError {
            guard case .unreachable = error else { return XCTFail("\(error)") }
        }
    }

    func test_aCallAboutAnotherRegionsSubject_follows421_toItsHomeRegion() async throws {
        federation = try FederationFixture(regions: ["eu", "us"], gossip: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        let euAdmin = try client("admin", seeds: ["eu-1"])
        let federated = try await eventually(seconds: 30) {
            try await euAdmin.cluster().pools.federation.filter { $0.status == "alive" }.count == 2
        }
        XCTAssertTrue(federated, "eu-1 sees us-1 alive, so its 421 can name it")

        // Through eu-1 only: the registration of a subject living in the US is followed to us-1.
        let ingest = try client("ingest", seeds: ["eu-1"])
        let registered = try await ingest.register(.email("sam@example.com"), home: .country("US"))
        XCTAssertEqual(registered.region, "us")
        XCTAssertTrue(registered.created)
        XCTAssertTrue(registered.pid.hasPrefix("psn:v1:us:"), registered.pid)
        // The client learned where us subjects live: calls about the pid go to us-1 directly.
        _ = try await ingest.appendConsent(.grant(["analytics"], source: "test:client", collectedAt: Self.collectedAt), for: registered.pid)
        let subject = try await ingest.withToken(federation.token("serve")).subject(registered.pid)
        XCTAssertEqual(subject.region, "us")
        XCTAssertEqual(subject.activePurposes, ["analytics"])
        let misdirectedByEU = try await answers(of: "eu-1", status: 421)
        XCTAssertEqual(misdirectedByEU, 1, "only the registration went to eu-1; the calls naming the pid went to us-1 directly")

        // A client that does not follow gets the 421 itself, naming the home region and its nodes.
        let stayHome = try client("serve", seeds: ["eu-1"]) { $0.misdirectedHopsMax = 0 }
        let misdirected = await problem { _ = try await stayHome.subject(registered.pid) }
        XCTAssertEqual(misdirected?.status, 421)
        XCTAssertEqual(misdirected?.code, .misdirected)
        XCTAssertEqual(misdirected?.homeRegion, "us")
        XCTAssertEqual(misdirected?.nodes.map(\.name), ["us-1"])
        XCTAssertEqual(misdirected?.nodes.map(\.http), [nodes["us-1"]!.address.description])
    }

    func test_aRateLimitedRead_isRetriedAfterRetryAfter_andNotSooner() async throws {
        // One read per second per principal, no burst: a second read at once is 429 with Retry-After: 1.
        try startNode { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["read_rate_per_second"] = 1.0
            limits["read_burst"] = 1.0
            config["limits"] = limits
        }
        let pid = try await client("ingest").register(.email("r@example.com"), home: .region("eu")).pid
        // The client's own back-off is 1 ms: were Retry-After ignored, its three attempts would all fall within the same second.
        let serve = try client("serve") {
            $0.attemptsMax = 3
            $0.retryDelayMilliseconds = 1
        }
        let once = try client("serve") { $0.attemptsMax = 1 }

        let first = try await serve.lookup(.email("r@example.com"))
        XCTAssertEqual(first, pid, "the one read of this second")
        let limited = await problem { _ = try await once.lookup(.email("r@example.com")) }
        XCTAssertEqual(limited?.status, 429)
        XCTAssertEqual(limited?.code, .rateLimited)
        XCTAssertEqual(limited?.retryAfterSeconds, 1)
        let retried = try await serve.lookup(.email("r@example.com"))
        XCTAssertEqual(retried, pid, "answered after waiting as asked")
        let refusals = try await rateLimitedCount()
        XCTAssertEqual(refusals, 2, "one 429 for the client that may not retry, one for the one that waited")
    }

    /// Responses of `status` that `node` sent, over every route (`domicile_http_requests_total`).
    func answers(of node: String, status: Int) async throws -> Int {
        let metrics = try await nodes[node]!.call("GET", "/metrics", token: nil).text
        return metrics.split(separator: "\n").filter { $0.hasPrefix("domicile_http_requests_total{") && $0.contains(#"status="\#(status)""#) }
            .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
    }

    /// `domicile_rate_limited_total`, summed over routes, from the node's metrics.
    func rateLimitedCount() async throws -> Int {
        let metrics = try await nodes["eu-1"]!.call("GET", "/metrics", token: nil).text
        return metrics.split(separator: "\n").filter { $0.hasPrefix("domicile_rate_limited_total") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
    }

    func test_aMissingCAFile_andABadSeed_areConfigurationErrors() {
        XCTAssertThrowsError(try DomicileClient(configuration: .init(seeds: ["127.0.0.1:1"], caFile: "/nonexistent/ca.pem"))) {
            guard case .invalidConfiguration(let reason) = $0 as? DomicileClientError, reason.hasPrefix("caFile") else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try DomicileClient(seeds: ["no port"])) {
            guard case .invalidConfiguration = $0 as? DomicileClientError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try DomicileClient(seeds: []))
    }
}
