@testable import DomicileNode
import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicileNet
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// What crosses the wire between the federation's nodes, captured on the
/// bridge that joins them (each node in its own network namespace): after
/// a workload in three regions — subjects with identifiers, releases, an
/// erasure across regions — every federation message captured decrypts
/// with the federation key, is signed by a node of the region it names, and
/// decodes with the federation codec, which has no case but aggregate
/// releases, erasure intents and erasure acks; and no byte exchanged between
/// nodes holds a subject's identifier.
final class FederationWireTests: FederationTestCase {
    struct Capture: Decodable {
        struct Exchange: Decodable {
            let path: String
            let request: String
            let status: Int?
            let response: String?
        }
        let exchanges: [Exchange]
        let flows: Int
        let incomplete: Int
        let node_bytes: String
    }

    func test_theFederationTrafficCapturedOnTheWire_holdsOnlyTheFederationsRecordKinds() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw XCTSkip("python3 is missing: no capture") }
        let network = try await startFederationInNamespaces(skipping: "nothing to capture on")
        defer { network.tearDown() }

        let output = federation.directory.file("capture.json")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tools/wire_capture.py").path
        let sniffer = try RunningProcess(network.hubLauncher[0], Array(network.hubLauncher.dropFirst()) + ["/usr/bin/python3", script,
                                         output, network.testHost], stderrPath: federation.directory.file("capture.log"))
        XCTAssertNotNil(sniffer.waitForLine(timeout: 20) { $0 == "ready" }, "the capture started")

        // A workload in every region: identifiers registered, releases made, an erasure across regions.
        var emails: [String] = []
        for (region, country) in [("eu", "DE"), ("us", "US"), ("br", "BR")] {
            for index in 0..<2 {
                let email = "wire-\(region)-\(index)@example.com"
                emails.append(email)
                let registered = try await call("\(region)-1", "POST", "/v1/subjects", role: "ingest",
                                                json: #"{"identifier":{"kind":"email","value":"\#(email)"},"country":"\#(country)"}"#)
                XCTAssertEqual(registered.status, 201, registered.text)
            }
            let released = try await call("\(region)-2", "POST", "/v1/aggregates", role: "analyst", json: #"{"name":"wire","kind":"count","epsilon":1}"#)
            XCTAssertEqual(released.status, 201, released.text)
        }
        let erased = try await call("us-3", "POST", "/v1/erasures", role: "privacy_officer",
                                    json: #"{"identifier":{"kind":"email","value":"wire-eu-0@example.com"}}"#)
        XCTAssertEqual(erased.status, 202, erased.text)
        let id = try XCTUnwrap(erased.json["erasure_id"] as? String)
        let complete = try await eventually(seconds: 60) {
            try await call("us-1", "GET", "/v1/erasures/\(id)", role: "privacy_officer").json["status"] as? String == "complete"
        }
        XCTAssertTrue(complete, "the erasure completed")
        let global = try await eventually(seconds: 30) {
            (try await call("br-3", "GET", "/v1/aggregates/wire/global", role: "analyst").json["missing_regions"] as? [String]) == []
        }
        XCTAssertTrue(global, "the releases crossed")
        try await Task.sleep(nanoseconds: 500_000_000)
        sniffer.signal(SIGTERM)
        XCTAssertEqual(sniffer.wait(), 0, (try? String(contentsOfFile: federation.directory.file("capture.log"), encoding: .utf8)) ?? "")

        let capture = try JSONDecoder().decode(Capture.self, from: Data(contentsOf: URL(fileURLWithPath: output)))
        let master = try MasterKey(base64: try String(contentsOfFile: federation.directory.file("master.key"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))
        let key = try KeyringFile.load(path: federation.directory.file("eu-1/eu-1.keyring"), master: master).keySet(.federationGossip)
        let trust = try FederationTrust(paths: ["eu", "us", "br"].map { federation.directory.file("\($0).roster.json") })
        var kinds: [FederationRecordKind: Int] = [:]
        var messages = 0
        func check(_ sealed: String, associatedData: [UInt8], domain: String, isAnswer: Bool) throws -> [FederationEnvelope] {
            let opened = try XCTUnwrap(FederationFrame.open(try key.open(try XCTUnwrap(Hex.decode(sealed)), associatedData: associatedData)))
            let envelopes = isAnswer ? try FederationSync.decodeAnswers(opened.payload) : [try FederationCodec.decode(opened.payload)]
            for envelope in envelopes {
                XCTAssertTrue(trust.isSigned(opened.signedBytes(domain), signature: opened.signature, by: opened.node, of: envelope.from),
                              "\(opened.node) signs for \(envelope.from)")
                if case .deltas(let entries, _, _) = envelope.message {
                    for entry in entries { kinds[entry.body.kind, default: 0] += 1 }
                }
            }
            messages += 1
            return envelopes
        }
        for exchange in capture.exchanges where exchange.path == FederationSync.path {
            _ = try check(exchange.request, associatedData: FederationSync.messageAssociatedData, domain: FederationFrame.requestDomain,
                          isAnswer: false)
            if exchange.status == 200, let response = exchange.response {
                _ = try check(response, associatedData: FederationSync.answerAssociatedData, domain: FederationFrame.answerDomain,
                              isAnswer: true)
            }
        }
        print("wire capture: \(capture.flows) flows, \(messages) federation messages, entries by kind \(kinds), \(capture.incomplete) not HTTP or cut")
        XCTAssertGreaterThan(messages, 0, "federation messages were captured (\(capture.flows) flows, \(capture.incomplete) cut)")
        XCTAssertGreaterThan(kinds[.aggregate] ?? 0, 0, "releases crossed: \(kinds)")
        XCTAssertGreaterThan((kinds[.erasureIntent] ?? 0) + (kinds[.erasureAck] ?? 0), 0, "erasure signals crossed: \(kinds)")

        // No identifier in anything the nodes sent each other (HTTP, the region channel): all of it is sealed.
        let wire = try XCTUnwrap(Hex.decode(capture.node_bytes))
        XCTAssertGreaterThan(wire.count, 0)
        for email in emails {
            XCTAssertFalse(RegionLogTests.contains(wire, Array(email.utf8)), "an identifier crossed between nodes in clear")
        }
    }
}
