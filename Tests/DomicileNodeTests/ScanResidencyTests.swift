import DomicileTestSupport
import Foundation
import XCTest

/// `domicile scan` over a real node's data directory: after a workload of
/// registrations, consent, features, vectors, lookups and searches, and
/// after the subject's erasure, no file of the node (database, WAL, region
/// log, keyring) holds the subject's identifier, feature value or vector in
/// any form the scanner knows; the same canaries planted in a file are found
/// (the scan could have failed).
final class ScanResidencyTests: NodeTestCase {
    func test_aNodesDataDirectory_holdsNoCanary_afterAWorkload_norAfterTheErasure() async throws {
        try startNode(regions: ["eu"])
        let email = "Scan.Canary-\(UInt32.random(in: 0...UInt32.max))@Example.de"
        let vector = (0..<8).map { _ in Double(Int.random(in: 1...999_999)) / 1_000_000 }
        let value = "velvet-slippers-" + String((0..<8).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        try await defineFeature("last_category", type: "string", purpose: "product_recs")
        let collection = try await node.call("PUT", "/v1/collections/recs", token: token("admin"), json: """
            {"dimension":8,"metric":"cosine","purpose":"product_recs","index":{"kind":"flat"}}
            """)
        XCTAssertTrue([200, 201].contains(collection.status), collection.text)
        let pid = try await register(email: email)
        try await receipt(pid, "grant", ["product_recs"])
        let written = try await writeFeatures(pid, #"{"last_category":"\#(value)"}"#)
        XCTAssertEqual(written.status, 200, written.text)
        let components = vector.map { "\($0)" }.joined(separator: ",")
        let put = try await node.call("PUT", "/v1/collections/recs/vectors/\(pid)", token: token("ingest"), json: #"{"vector":[\#(components)]}"#)
        XCTAssertTrue([200, 201, 204].contains(put.status), put.text)
        let search = try await node.call("POST", "/v1/collections/recs/search", token: token("serve"),
                                         json: #"{"vector":[\#(components)],"k":3,"purpose":"product_recs"}"#)
        XCTAssertEqual(search.status, 200, search.text)
        let lookup = try await node.call("POST", "/v1/subjects/lookup", token: token("serve"),
                                         json: #"{"identifier":{"kind":"email","value":"\#(email)"}}"#)
        XCTAssertEqual(lookup.status, 200, lookup.text)

        let canaries = federation.directory.file("canaries.json")
        try Data("""
            {"identifiers":[{"kind":"email","value":"\(email)"}],"features":[{"value":"\(value)"}],"vectors":[{"values":[\(components)]}]}
            """.utf8).write(to: URL(fileURLWithPath: canaries))
        let data = federation.dataDirectory("eu-1")
        func scan() throws -> (status: Int32, stdout: String, stderr: String) { try Binary.run(["scan", data, "--canaries", canaries]) }

        // While the node runs (its WAL holds the latest pages) and the subject exists: everything is sealed.
        let live = try scan()
        XCTAssertEqual(live.status, 0, live.stderr + live.stdout)

        let erased = try await node.call("POST", "/v1/erasures", token: token("privacy_officer"), json: #"{"pid":"\#(pid)"}"#)
        XCTAssertEqual(erased.json["status"] as? String, "complete", erased.text)
        node.stop()
        let after = try scan()
        XCTAssertEqual(after.status, 0, after.stderr + after.stdout)

        // The control: the same canaries, planted, are found.
        let floats = vector.flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) }
        try Data(Array("x \(email.lowercased()) y \(value) z".utf8) + floats).write(to: URL(fileURLWithPath: data + "/planted.bin"))
        let planted = try scan()
        XCTAssertEqual(planted.status, 1, planted.stderr)
        XCTAssertTrue(planted.stderr.contains("found, in planted.bin"), planted.stderr)
        for canary in ["identifiers[0]", "features[0]", "vectors[0]"] {
            XCTAssertTrue(planted.stdout.contains("\"canary\" : \"\(canary)\""), "\(canary) not found in the planted file")
        }
    }
}
