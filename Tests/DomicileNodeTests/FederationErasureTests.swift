import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// The erasure cascade across three regions of three nodes (DESIGN.md
/// section 9): a request made on any node of any region, by another
/// region's pid or by an identifier held in several regions, reaches every
/// region through the federation, is erased there through each region's
/// log, and completes with one signed ack per region, in a certificate that
/// `domicile erasure verify` accepts with the nodes' keys; a region that is
/// down keeps the request pending, naming it, until it is back; a request
/// acknowledged by a leader SIGKILLed right after completes under the next;
/// and no node's data directory holds the erased subjects' canaries
/// afterwards.
final class FederationErasureTests: FederationTestCase {
    func register(_ email: String, on node: String, country: String) async throws -> String {
        let response = try await call(node, "POST", "/v1/subjects", role: "ingest",
                                      json: #"{"identifier":{"kind":"email","value":"\#(email)"},"country":"\#(country)"}"#)
        XCTAssertEqual(response.status, 201, response.text)
        return try XCTUnwrap(response.json["pid"] as? String, response.text)
    }

    /// Polls the request on `node` until it completes; returns its last state.
    func completion(of id: String, on node: String, seconds: Double = 60) async throws -> [String: Any] {
        var state: [String: Any] = [:]
        _ = try await eventually(seconds: seconds) {
            state = try await call(node, "GET", "/v1/erasures/\(id)", role: "privacy_officer").json
            return state["status"] as? String == "complete"
        }
        return state
    }

    func verify(_ certificate: [String: Any], named name: String) throws {
        let file = federation.directory.file("\(name).json")
        try JSONSerialization.data(withJSONObject: certificate).write(to: URL(fileURLWithPath: file))
        let verified = try Binary.run(["erasure", "verify", file] + (try federation.trustArguments(for: federation.nodeNames)))
        XCTAssertEqual(verified.status, 0, verified.stderr + verified.stdout)
    }

    /// Makes a request on `node` while br cannot answer, and checks it waits
    /// for br alone: eu and us erased, br pending and named. Returns its id.
    func requestWaitingForBR(_ pid: String, on node: String) async throws -> String {
        let requested = try await call(node, "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(pid)"}"#)
        XCTAssertEqual(requested.status, 202, requested.text)
        XCTAssertEqual(Set((requested.json["regions"] as? [String: String])?.keys.map { $0 } ?? []), ["eu", "us", "br"], requested.text)
        let id = try XCTUnwrap(requested.json["erasure_id"] as? String)
        let waits = try await eventually(seconds: 30) {
            let state = try await call(node, "GET", "/v1/erasures/\(id)", role: "privacy_officer").json
            return (state["regions"] as? [String: String]) == ["eu": "erased", "us": "erased", "br": "pending"]
        }
        XCTAssertTrue(waits, "eu and us erased, br pending")
        let pending = try await call(node, "GET", "/v1/erasures/\(id)", role: "privacy_officer")
        XCTAssertEqual(pending.json["status"] as? String, "pending", pending.text)
        XCTAssertEqual(pending.json["waiting_for"] as? [String], ["br"], pending.text)
        let status = try XCTUnwrap(pending.json["region_status"] as? [String: [String: Any]], pending.text)
        XCTAssertEqual(status["br"]?["state"] as? String, "pending")
        XCTAssertTrue(["awaiting_ack", "unreachable"].contains(status["br"]?["code"] as? String ?? ""), pending.text)
        XCTAssertTrue(status["br"]?["last_contact"] is String || status["br"]?["last_contact"] is NSNull, pending.text)
        XCTAssertEqual(status["us"]?["state"] as? String, "erased")
        XCTAssertTrue(status["us"]?["code"] is NSNull, pending.text)
        return id
    }

    func test_erasuresCascadeToEveryRegion_completeWithARegionAckEach_andWaitForARegionThatIsDown() async throws {
        federation = try FederationFixture(regions: ["eu", "us", "br"], nodesPerRegion: 3, gossip: true, regionLog: true)
        for name in federation.nodeNames { nodes[name] = try federation.start(name) }
        try await waitUntilFederated()

        let anna = try await register("anna.cascade@example.de", on: "eu-1", country: "DE")
        let carlaEU = try await register("carla.cascade@example.com", on: "eu-2", country: "DE")
        let carlaBR = try await register("carla.cascade@example.com", on: "br-1", country: "BR")
        let bo = try await register("bo.cascade@example.com", on: "us-1", country: "US")

        // 1. On us-2, by the pid of an eu subject.
        let byPID = try await call("us-2", "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(anna)"}"#)
        XCTAssertEqual(byPID.status, 202, byPID.text)
        XCTAssertEqual(Set((byPID.json["regions"] as? [String: String])?.keys.map { $0 } ?? []), ["eu", "us", "br"], byPID.text)
        let first = try await completion(of: try XCTUnwrap(byPID.json["erasure_id"] as? String), on: "us-3")
        XCTAssertEqual(first["status"] as? String, "complete", "\(first)")
        let certificate = try XCTUnwrap(first["certificate"] as? [String: Any], "\(first)")
        let acks = try XCTUnwrap(certificate["acks"] as? [[String: Any]])
        XCTAssertEqual(Set(acks.compactMap { $0["region"] as? String }), ["eu", "us", "br"])
        XCTAssertEqual(Set(acks.compactMap { $0["scope"] as? String }), ["region"])
        let erasedInEU = acks.first { $0["region"] as? String == "eu" }.flatMap { ($0["counts"] as? [String: Any])?["subjects"] as? Int }
        XCTAssertEqual(erasedInEU, 1, "eu erased the subject")
        try verify(certificate, named: "by-pid")
        let gone = try await call("eu-3", "GET", "/v1/subjects/\(anna)", role: "serve")
        XCTAssertEqual(gone.status, 404, gone.text)
        // In eu, which did not make the request, its copy is complete once eu acked; the certificate is the origin's.
        let copy = try await call("eu-1", "GET", "/v1/erasures/\(try XCTUnwrap(byPID.json["erasure_id"] as? String))", role: "privacy_officer")
        XCTAssertEqual(copy.json["status"] as? String, "complete", copy.text)
        XCTAssertNil(copy.json["certificate"], copy.text)

        // 2. On eu-1, by an identifier registered in eu and in br: both subjects go.
        let byIdentifier = try await call("eu-1", "POST", "/v1/erasures", role: "privacy_officer",
                                          json: #"{"identifier":{"kind":"email","value":"Carla.Cascade@example.com"}}"#)
        XCTAssertEqual(byIdentifier.status, 202, byIdentifier.text)
        let second = try await completion(of: try XCTUnwrap(byIdentifier.json["erasure_id"] as? String), on: "eu-2")
        XCTAssertEqual(second["status"] as? String, "complete", "\(second)")
        try verify(try XCTUnwrap(second["certificate"] as? [String: Any]), named: "by-identifier")
        for (node, pid) in [("eu-3", carlaEU), ("br-2", carlaBR)] {
            let read = try await call(node, "GET", "/v1/subjects/\(pid)", role: "serve")
            XCTAssertEqual(read.status, 404, "\(node): \(read.text)")
        }

        // 2b. On br-2, by the pid of a us subject.
        let ed = try await register("ed.cascade@example.com", on: "us-3", country: "US")
        let fromBR = try await call("br-2", "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(ed)"}"#)
        XCTAssertEqual(fromBR.status, 202, fromBR.text)
        let fromBRDone = try await completion(of: try XCTUnwrap(fromBR.json["erasure_id"] as? String), on: "br-3")
        XCTAssertEqual(fromBRDone["status"] as? String, "complete", "\(fromBRDone)")
        try verify(try XCTUnwrap(fromBRDone["certificate"] as? [String: Any]), named: "from-br")
        let edGone = try await call("us-2", "GET", "/v1/subjects/\(ed)", role: "serve")
        XCTAssertEqual(edGone.status, 404, edGone.text)

        // 3. With br down, a request waits for br, naming it; it completes once br is back.
        for node in ["br-1", "br-2", "br-3"] { nodes[node]!.kill() }
        let id = try await requestWaitingForBR(bo, on: "eu-2")
        for node in ["br-1", "br-2", "br-3"] { nodes[node] = try federation.start(node) }
        let third = try await completion(of: id, on: "eu-1", seconds: 90)
        XCTAssertEqual(third["status"] as? String, "complete", "\(third)")
        try verify(try XCTUnwrap(third["certificate"] as? [String: Any]), named: "after-heal")
        let boGone = try await call("us-1", "GET", "/v1/subjects/\(bo)", role: "serve")
        XCTAssertEqual(boGone.status, 404, boGone.text)

        // 4. SIGKILL of the origin region's leader right after it acknowledged a request: the next leader carries it on.
        let dana = try await register("dana.cascade@example.com", on: "us-2", country: "US")
        var leader = ""
        for name in ["eu-1", "eu-2", "eu-3"] {
            let log = try await call(name, "GET", "/v1/cluster", role: "admin").json["region_log"] as? [String: Any]
            if log?["role"] as? String == "leader" { leader = name }
        }
        XCTAssertFalse(leader.isEmpty, "eu has a leader")
        let acknowledged = try await call(leader, "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(dana)"}"#)
        XCTAssertEqual(acknowledged.status, 202, acknowledged.text)
        nodes[leader]!.kill()
        let survivor = try XCTUnwrap(["eu-1", "eu-2", "eu-3"].first { $0 != leader })
        let fourth = try await completion(of: try XCTUnwrap(acknowledged.json["erasure_id"] as? String), on: survivor, seconds: 90)
        XCTAssertEqual(fourth["status"] as? String, "complete", "\(fourth)")
        try verify(try XCTUnwrap(fourth["certificate"] as? [String: Any]), named: "after-leader-kill")
        let danaGone = try await call("us-3", "GET", "/v1/subjects/\(dana)", role: "serve")
        XCTAssertEqual(danaGone.status, 404, danaGone.text)
        nodes[leader] = try federation.start(leader)
        try await waitUntilReady([leader])

        // No node of any region holds the erased subjects' identifiers.
        let canaries = federation.directory.file("canaries.json")
        try Data("""
            {"identifiers":[{"kind":"email","value":"anna.cascade@example.de"},{"kind":"email","value":"carla.cascade@example.com"},
                            {"kind":"email","value":"bo.cascade@example.com"},{"kind":"email","value":"dana.cascade@example.com"},
                            {"kind":"email","value":"ed.cascade@example.com"}]}
            """.utf8).write(to: URL(fileURLWithPath: canaries))
        for node in federation.nodeNames {
            let scan = try Binary.run(["scan", federation.dataDirectory(node), "--canaries", canaries])
            XCTAssertEqual(scan.status, 0, "\(node): \(scan.stderr)")
        }
    }

    /// The same wait with the region cut off by the network rather than
    /// stopped: br's three nodes, each in a network namespace, keep running
    /// and reach each other but nothing outside br (blackhole routes). The
    /// request stays pending naming br, then completes after the heal.
    func test_aRegionPartitionedAway_keepsARequestPending_andItCompletesAfterTheHeal() async throws {
        let network = try await startFederationInNamespaces(skipping: "the stopped-region test covers the wait")
        defer { network.tearDown() }
        let subject = try await register("fay.partition@example.com", on: "us-1", country: "US")
        let br = Set(federation.nodeNames.enumerated().filter { $0.element.hasPrefix("br-") }.map { $0.offset + 1 })

        try network.partition(group: br)
        let id = try await requestWaitingForBR(subject, on: "eu-1")

        try network.heal(group: br)
        let done = try await completion(of: id, on: "eu-1", seconds: 90)
        XCTAssertEqual(done["status"] as? String, "complete", "\(done)")
        try verify(try XCTUnwrap(done["certificate"] as? [String: Any]), named: "after-partition")
    }
}
