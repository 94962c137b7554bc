@testable import DomicileNode
import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// Three regions of three nodes, each region one store by its region log:
/// a release made in each region reaches every other region through the
/// federation's anti-entropy, and the global view on every node of every
/// region combines the three (sum, √Σσ², ε the largest); what crosses a
/// border is only the federation's record kinds, and no node holds another
/// region's identifiers; a message not sealed with the federation key is
/// refused.
final class FederationSyncTests: FederationTestCase {
    /// A subject's feature value and vector, distinct per region and subject.
    static func feature(_ region: String, _ index: Int) -> String { "segment-\(region)-\(["alpha", "beta", "gamma", "delta"][index])" }
    static func vector(_ region: String, _ index: Int) -> String {
        let seed = Double(region.unicodeScalars.reduce(0) { $0 * 31 + Int($1.value) } % 997 + index * 13)
        return "[" + (1...4).map { "\(((seed * Double($0) * 0.6180339).truncatingRemainder(dividingBy: 1) * 1_000).rounded() / 1_000 + 0.001)" }
            .joined(separator: ",") + "]"
    }

    func test_aReleaseInEachRegion_reachesEveryNodeOfEveryRegion_andTheGlobalViewCombinesThem() async throws {
        federation = try FederationFixture(regions: ["eu", "us", "br"], nodesPerRegion: 3, gossip: true, regionLog: true) { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["privacy_epsilon_per_period"] = 1_000.0
            config["limits"] = limits
        }
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        try await waitUntilReady(federation.nodeNames)

        // Each region: subjects registered on one node, consent on another, the release on a third.
        let subjects = ["eu": ("DE", 2), "us": ("US", 3), "br": ("BR", 4)]
        var releaseIDs: [String: String] = [:]
        for (region, (country, count)) in subjects {
            // Each subject also gets a feature value and a vector: what must never leave its region.
            let defined = try await call("\(region)-1", "PUT", "/v1/feature-definitions/segment", role: "admin", json: """
                {"type":"string","purpose":"analytics","ttl_seconds":3600,"classification":"behavioral"}
                """)
            XCTAssertTrue([200, 201].contains(defined.status), defined.text)
            let collection = try await call("\(region)-1", "PUT", "/v1/collections/taste", role: "admin", json: """
                {"dimension":4,"metric":"cosine","purpose":"analytics","index":{"kind":"flat"}}
                """)
            XCTAssertTrue([200, 201].contains(collection.status), collection.text)
            for index in 0..<count {
                let registered = try await call("\(region)-1", "POST", "/v1/subjects", role: "ingest",
                                                json: #"{"identifier":{"kind":"email","value":"\#(region)-\#(index)@example.com"},"country":"\#(country)"}"#)
                XCTAssertEqual(registered.status, 201, registered.text)
                let pid = try XCTUnwrap(registered.json["pid"] as? String)
                let granted = try await call("\(region)-2", "POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                                             json: #"{"action":"grant","purposes":["analytics"],"source":"test:e2e","collected_at":"2026-01-01T00:00:00Z"}"#)
                XCTAssertEqual(granted.status, 201, granted.text)
                let written = try await call("\(region)-3", "PUT", "/v1/subjects/\(pid)/features", role: "ingest",
                                             json: #"{"values":{"segment":"\#(Self.feature(region, index))"}}"#)
                XCTAssertEqual(written.status, 200, written.text)
                let stored = try await call("\(region)-1", "PUT", "/v1/collections/taste/vectors/\(pid)", role: "ingest",
                                            json: #"{"vector":\#(Self.vector(region, index))}"#)
                XCTAssertTrue([200, 201, 204].contains(stored.status), stored.text)
            }
            // ε = 60: the discrete Laplace is 0 with probability 1 − 2e⁻⁶⁰/(1+e⁻⁶⁰), so the count is exact.
            let released = try await call("\(region)-3", "POST", "/v1/aggregates", role: "analyst",
                                          json: #"{"name":"subjects","kind":"count","epsilon":60}"#)
            XCTAssertEqual(released.status, 201, released.text)
            XCTAssertEqual(released.json["value"] as? Double, Double(count))
            releaseIDs[region] = try XCTUnwrap(released.json["release_id"] as? String)
        }

        for name in federation.nodeNames {
            var view: [String: Any] = [:]
            let complete = try await eventually(seconds: 30) {
                view = try await call(name, "GET", "/v1/aggregates/subjects/global", role: "analyst").json
                return (view["missing_regions"] as? [String]) == []
            }
            XCTAssertTrue(complete, "\(name) sees every region's release: \(view)")
            XCTAssertEqual(view["value"] as? Double, 9, "\(name): the sum of the regions' counts")
            XCTAssertEqual(view["combined_as"] as? String, "sum")
            XCTAssertEqual(view["epsilon"] as? Double, 60)
            XCTAssertEqual(view["epsilon_assumption"] as? String, "disjoint_subjects")
            XCTAssertEqual(view["noise_scale"] as? Double ?? 0, (3.0 / 3_600).squareRoot(), accuracy: 1e-4, "√Σσᵢ² of three σ = 1/60")
            let regions = try XCTUnwrap(view["regions"] as? [String: [String: Any]])
            XCTAssertEqual(regions.mapValues { $0["release_id"] as? String ?? "" }, releaseIDs, name)
            let interval = try XCTUnwrap(view["interval"] as? [String: Any])
            XCTAssertEqual(interval["level"] as? Double, 0.95)
            XCTAssertLessThan(interval["low"] as? Double ?? .infinity, 9)
            XCTAssertGreaterThan(interval["high"] as? Double ?? -.infinity, 9)
        }
        // The same view as CSV, for a BI tool: a row per region, then the global row.
        let csv = try await nodes["us-1"]!.call("GET", "/v1/aggregates/subjects/global", token: federation.token("analyst"),
                                                headers: ["Accept": "text/csv"])
        XCTAssertEqual(csv.status, 200, csv.text)
        XCTAssertEqual(csv.contentType, "text/csv; charset=utf-8")
        let lines = csv.text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        XCTAssertEqual(lines.count, 5, csv.text)
        XCTAssertEqual(Set(lines.dropFirst().prefix(3).map { $0.split(separator: ",")[1] }), ["br", "eu", "us"], csv.text)
        XCTAssertTrue(lines.last?.hasPrefix("global,,,subjects,count,,9.0,") == true, csv.text)

        // A region's own view of its release stays its own.
        let own = try await call("us-2", "GET", "/v1/aggregates/subjects", role: "analyst")
        XCTAssertEqual(own.json["release_id"] as? String, releaseIDs["us"], own.text)

        // What crossed the borders: aggregate records only (kind 1), two of other regions on each node.
        let database = try Database(path: federation.dataDirectory("br-2") + "/node.sqlite")
        let kinds = try database.fetchAll("SELECT origin, kind FROM federation_entries ORDER BY origin") { "\($0.text(0)):\($0.int64(1))" }
        XCTAssertEqual(kinds, ["br:1", "eu:1", "us:1"])

        // Residency: no node holds another region's subjects' identifiers, feature values or vectors, in any form the scanner knows.
        for (region, (_, count)) in subjects {
            let canaries = federation.directory.file("canaries-\(region).json")
            let identifiers = (0..<count).map { #"{"kind":"email","value":"\#(region)-\#($0)@example.com"}"# }.joined(separator: ",")
            let features = (0..<count).map { #"{"value":"\#(Self.feature(region, $0))"}"# }.joined(separator: ",")
            let vectors = (0..<count).map { #"{"values":\#(Self.vector(region, $0))}"# }.joined(separator: ",")
            try Data(#"{"identifiers":[\#(identifiers)],"features":[\#(features)],"vectors":[\#(vectors)]}"#.utf8)
                .write(to: URL(fileURLWithPath: canaries))
            for node in federation.nodeNames where !node.hasPrefix(region + "-") {
                let scan = try Binary.run(["scan", federation.dataDirectory(node), "--canaries", canaries])
                XCTAssertEqual(scan.status, 0, "\(node) holds an identifier of \(region): \(scan.stderr)")
            }
        }

        // A node of us, with the federation key, cannot speak for eu: the message's signer must be a node of its region.
        let master = try MasterKey(base64: try String(contentsOfFile: federation.directory.file("master.key"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))
        let keyring = try KeyringFile.load(path: federation.directory.file("us-1/us-1.keyring"), master: master)
        func posted(claiming from: String) async throws -> NodeProcess.Response {
            let envelope = FederationEnvelope(from: try RegionID(from), to: try RegionID("br"), message: .digest(VersionVector([:])))
            let framed = FederationFrame.frame(try FederationCodec.encode(envelope), domain: FederationFrame.requestDomain,
                                               node: try NodeName("us-1"), key: try keyring.signingKey())
            let sealed = try keyring.keySet(.federationGossip).seal(framed, associatedData: FederationSync.messageAssociatedData)
            let response = try await nodes["br-1"]!.client.send("POST", "/internal/v1/federation", to: nodes["br-1"]!.address,
                                                                headers: ["Content-Type": "application/octet-stream"], body: sealed)
            return NodeProcess.Response(status: response.status, headers: response.headers, body: response.body)
        }
        let impersonating = try await posted(claiming: "eu")
        XCTAssertEqual(impersonating.status, 403, impersonating.text)
        XCTAssertEqual(impersonating.json["code"] as? String, "untrusted_sender")
        let honest = try await posted(claiming: "us")
        XCTAssertEqual(honest.status, 200, honest.text)

        // A message not sealed with the federation key is refused.
        let forged = try await nodes["eu-1"]!.call("POST", "/internal/v1/federation", token: nil, json: #"{"digest":{}}"#)
        XCTAssertEqual(forged.status, 403, forged.text)
        XCTAssertEqual(forged.json["code"] as? String, "not_a_federation_node")
    }
}
