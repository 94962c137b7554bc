import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// Nodes laid out by `cluster init --tls`: the API over TLS, node-to-node
/// calls over TLS against the cluster CA, SIGHUP reloading the certificate,
/// and plaintext only when the config says so (and says it aloud).
final class TLSNodeTests: FederationTestCase {
    func test_aTLSFederation_servesItsAPI_andItsNodesCallEachOther_overTLS() async throws {
        federation = try FederationFixture(regions: ["eu", "us"], nodesPerRegion: 2, gossip: true, regionLog: true, tls: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        try await waitUntilFederated()

        let ready = try await call("eu-1", "GET", "/readyz", role: "admin")
        XCTAssertEqual(ready.json["transport"] as? String, "tls")
        XCTAssertTrue(nodes["eu-1"]!.logLines.contains { $0.contains(#""event":"listening""#) && $0.contains(#""transport":"tls""#) })

        // The federation exchange (POST /internal/v1/federation, over the peer client) reaches the other region
        // (sent by the node leading eu's log).
        let exchanged = try await eventually(seconds: 30) {
            for name in ["eu-1", "eu-2"] {
                let view = try await call(name, "GET", "/v1/cluster", role: "admin").json
                let trips = view["round_trips"] as? [[String: Any]] ?? []
                if trips.contains(where: { $0["region"] as? String == "us" && $0["way"] as? String == "federation" }) { return true }
            }
            return false
        }
        XCTAssertTrue(exchanged, "eu-1's federation exchanges with us went through over TLS")

        // Without the CA, or in plaintext, nothing is served.
        let address = nodes["eu-1"]!.address
        do {
            _ = try await HTTPClient().send("GET", "/healthz", to: address)
            XCTFail("a plaintext call was answered")
        } catch {}
        var stranger = HTTPClient.Settings()
        let otherCA = TemporaryDirectory("domicile-other-ca")
        try CertificateIssuer.makeAuthority(commonName: "Other CA").write(certificateTo: otherCA.file("ca.pem"), keyTo: otherCA.file("ca-key.pem"))
        stranger.tls = try TLSContext.client(caFile: otherCA.file("ca.pem"))
        do {
            _ = try await HTTPClient(settings: stranger).send("GET", "/healthz", to: address)
            XCTFail("a client without the cluster CA was answered")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed = failure else { return XCTFail("\(failure)") }
        }
        if let curl = ChildProcess.find("curl") {
            let health = try ChildProcess.run(curl, ["-sS", "--cacert", federation.caFile!, "https://\(address)/healthz"])
            XCTAssertEqual(health.status, 0)
            XCTAssertTrue(health.output.contains("ok"), health.output)
        }
    }

    func test_sighup_reloadsTheCertificate_forNewConnections_keepingOpenOnes() async throws {
        federation = try FederationFixture(tls: true)
        let node = try federation.start("eu-1")
        nodes["eu-1"] = node
        try await waitUntilReady(["eu-1"])
        let oldClient = try client(trusting: federation.caFile!)
        let before = try await oldClient.send("GET", "/healthz", to: node.address)
        XCTAssertEqual(before.status, 200)

        // A new CA and a certificate from it, written over the node's files.
        let renewed = TemporaryDirectory("domicile-renewed-ca")
        let authority = try CertificateIssuer.makeAuthority(commonName: "Renewed CA")
        try authority.write(certificateTo: renewed.file("ca.pem"), keyTo: renewed.file("ca-key.pem"))
        try CertificateIssuer.issue(commonName: "eu-1", hosts: ["127.0.0.1"], by: authority)
            .write(certificateTo: federation.directory.file("eu-1/eu-1.pem"), keyTo: federation.directory.file("eu-1/eu-1-key.pem"))
        node.process.signal(SIGHUP)
        let reloaded = try await eventually(seconds: 10) { node.logLines.contains { $0.contains("tls reloaded") } }
        XCTAssertTrue(reloaded, "the node logged the reload")

        let during = try await oldClient.send("GET", "/healthz", to: node.address)
        XCTAssertEqual(during.status, 200, "the open connection carries on")
        let fresh = try await client(trusting: renewed.file("ca.pem")).send("GET", "/healthz", to: node.address)
        XCTAssertEqual(fresh.status, 200, "a new connection gets the new certificate")
        do {
            _ = try await client(trusting: federation.caFile!).send("GET", "/healthz", to: node.address)
            XCTFail("a new connection got the old certificate")
        } catch let failure as HTTPClient.Failure {
            guard case .tlsFailed = failure else { return XCTFail("\(failure)") }
        }

        // A key that does not match is refused: the certificate in force stays.
        try Data("not a key".utf8).write(to: URL(fileURLWithPath: federation.directory.file("eu-1/eu-1-key.pem")))
        node.process.signal(SIGHUP)
        let refused = try await eventually(seconds: 10) { node.logLines.contains { $0.contains("tls reload failed") } }
        XCTAssertTrue(refused)
        let still = try await client(trusting: renewed.file("ca.pem")).send("GET", "/healthz", to: node.address)
        XCTAssertEqual(still.status, 200)
    }

    func test_sighup_reloadsThePeersCA_soNodesStillTalk_afterTheCAIsRotated() async throws {
        federation = try FederationFixture(regions: ["eu", "us"], gossip: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        // (One node per region: no region pool to join, so /readyz is not waited for; the exchanges are.)
        let exchangedBefore = try await eventually(seconds: 60) { self.answeredFederationExchange(on: "us-1") }
        XCTAssertTrue(exchangedBefore, "eu-1 reached us-1 before the rotation")

        // A new CA replaces the old one in the shared ca.pem (the old is no longer trusted),
        // and both nodes get certificates from it.
        let authority = try CertificateIssuer.makeAuthority(commonName: "Rotated CA")
        try authority.write(certificateTo: federation.directory.file("ca.pem"), keyTo: federation.directory.file("ca-key.pem"))
        try federation.reloadTrust()
        for name in federation.nodeNames {
            try CertificateIssuer.issue(commonName: name, hosts: ["127.0.0.1"], by: authority)
                .write(certificateTo: federation.directory.file("\(name)/\(name).pem"), keyTo: federation.directory.file("\(name)/\(name)-key.pem"))
        }
        // eu-1 reloads (no restart); us-1 restarts on the new files, so every connection between them is new.
        nodes["eu-1"]!.process.signal(SIGHUP)
        let reloaded = try await eventually(seconds: 10) { self.nodes["eu-1"]!.logLines.contains { $0.contains("tls reloaded") } }
        XCTAssertTrue(reloaded, "eu-1 logged the reload")
        nodes["us-1"]!.stop()
        nodes["us-1"] = try federation.start("us-1")

        // eu-1's calls verify us-1's new certificate against the CA it re-read: its exchanges are answered
        // (before the peer client's trust was reloaded, they failed the handshake until eu-1 restarted).
        let exchangedAfter = try await eventually(seconds: 60) { self.answeredFederationExchange(on: "us-1") }
        XCTAssertTrue(exchangedAfter, "eu-1 reached the restarted us-1 after the rotation: \(nodes["eu-1"]!.logLines.suffix(5))")
        // And us-1 (started on the new files) reaches eu-1, which presents its new certificate.
        let answeredByEU = try await eventually(seconds: 60) {
            let view = try await self.call("us-1", "GET", "/v1/cluster", role: "admin").json
            let trips = view["round_trips"] as? [[String: Any]] ?? []
            return trips.contains { $0["region"] as? String == "eu" && $0["way"] as? String == "federation" }
        }
        XCTAssertTrue(answeredByEU, "us-1 reached eu-1 after the rotation")
    }

    /// The node's access log holds a federation exchange it answered with 200 (since it started).
    private func answeredFederationExchange(on node: String) -> Bool {
        nodes[node]!.logLines.contains { $0.contains(#""route":"/internal/v1/federation""#) && $0.contains(#""status":200"#) }
    }

    func test_plaintext_isExplicit_logged_andReported() async throws {
        federation = try FederationFixture(tls: false)  // plaintext mode is what this test is about
        let node = try federation.start("eu-1")
        nodes["eu-1"] = node
        try await waitUntilReady(["eu-1"])
        let ready = try await node.call("GET", "/readyz", token: nil)
        XCTAssertEqual(ready.json["transport"] as? String, "plaintext")
        XCTAssertTrue(node.logLines.contains { $0.contains("plaintext: the HTTP API") }, "the node says it serves in clear")
        let config = try String(contentsOfFile: federation.configPath("eu-1"), encoding: .utf8)
        XCTAssertTrue(config.contains(#""plaintext" : true"#), config)
    }

    private func client(trusting caFile: String) throws -> HTTPClient {
        var settings = HTTPClient.Settings()
        settings.tls = try TLSContext.client(caFile: caFile)
        return HTTPClient(settings: settings)
    }
}
