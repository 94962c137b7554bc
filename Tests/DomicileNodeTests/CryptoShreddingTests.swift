import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// Crypto-shredding reaches copies: a copy of the data directory made before
/// an erasure, opened with the keyring as it is after the erasure, yields
/// nothing of the erased subject (docs/DECISIONS.md, "Subject keys under
/// bucket keys").
final class CryptoShreddingTests: NodeTestCase {
    static let vectorA: [Double] = [1, 0, 0, 0, 0, 0, 0, 0]
    static let vectorB: [Double] = [0, 1, 0, 0, 0, 0, 0, 0]

    func lookup(_ email: String) async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/subjects/lookup", token: token("serve"),
                            json: #"{"identifier":{"kind":"email","value":"\#(email)"}}"#)
    }

    func features(_ pid: String) async throws -> NodeProcess.Response {
        try await node.call("GET", "/v1/subjects/\(pid)/features?purpose=product_recs", token: token("serve"))
    }

    func searchPIDs(near vector: [Double]) async throws -> [String] {
        let json = "[" + vector.map { String($0) }.joined(separator: ",") + "]"
        let response = try await node.call("POST", "/v1/collections/recs/search", token: token("serve"),
                                           json: #"{"vector":\#(json),"k":10,"purpose":"product_recs"}"#)
        XCTAssertEqual(response.status, 200, response.text)
        return (response.json["results"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? String }
    }

    func bucket(_ pid: String) throws -> UInt16 {
        SubjectKeyBuckets.bucket(of: try PID(parsing: pid), count: SubjectKeyBuckets.defaultCount)
    }

    /// Registers a subject with a feature value and a vector.
    func populate(_ email: String, vector: [Double]) async throws -> String {
        let pid = try await register(email: email)
        try await receipt(pid, "grant", ["product_recs"])
        let written = try await writeFeatures(pid, #"{"last_category":"\#(email.prefix(1))-shoes"}"#)
        XCTAssertEqual(written.status, 200, written.text)
        let json = "[" + vector.map { String($0) }.joined(separator: ",") + "]"
        let put = try await node.call("PUT", "/v1/collections/recs/vectors/\(pid)", token: token("ingest"), json: #"{"vector":\#(json)}"#)
        XCTAssertTrue([200, 201, 204].contains(put.status), put.text)
        return pid
    }

    func test_copyTakenBeforeAnErasure_withTheCurrentKeyring_yieldsNothingOfTheErasedSubject() async throws {
        try startNode(regions: ["eu"])
        try await defineFeature("last_category", type: "string", purpose: "product_recs")
        let collection = try await node.call("PUT", "/v1/collections/recs", token: token("admin"), json: """
            {"dimension":8,"metric":"cosine","purpose":"product_recs","index":{"kind":"flat"}}
            """)
        XCTAssertTrue([200, 201].contains(collection.status), collection.text)
        let a = try await populate("a@example.com", vector: Self.vectorA)
        // B must sit in another bucket than A: an erasure also re-wraps A's bucket-mates, so in an old copy they
        // are lost with A (documented). With 4096 buckets the first candidate almost always qualifies.
        var b = ""
        for index in 0..<20 {
            let candidate = try await populate("b\(index)@example.com", vector: Self.vectorB)
            if try bucket(candidate) != bucket(a) { b = candidate; break }
        }
        XCTAssertFalse(b.isEmpty)
        let email = b.isEmpty ? "" : try await identifierOf(b)

        // A consistent copy: the node stopped, the database and its WAL copied together.
        XCTAssertEqual(node.stop(), 0)
        let data = federation.dataDirectory("eu-1")
        let copy = federation.directory.file("eu-1/data-before-erasure")
        try FileManager.default.copyItem(atPath: data, toPath: copy)

        node = try federation.start("eu-1")
        let erased = try await node.call("POST", "/v1/erasures", token: token("privacy_officer"), json: #"{"pid":"\#(a)"}"#)
        XCTAssertEqual(erased.status, 202, erased.text)
        XCTAssertEqual(node.stop(), 0)

        // The old copy, the current keyring.
        try FileManager.default.moveItem(atPath: data, toPath: federation.directory.file("eu-1/data-after-erasure"))
        try FileManager.default.moveItem(atPath: copy, toPath: data)
        node = try federation.start("eu-1")

        assertProblem(try await lookup("a@example.com"), 404, "unknown_subject")
        assertProblem(try await node.call("GET", "/v1/subjects/\(a)", token: token("serve")), 404, "unknown_subject")
        assertProblem(try await features(a), 404, "unknown_subject")
        let nearA = try await searchPIDs(near: Self.vectorA)
        XCTAssertFalse(nearA.contains(a), "A's vector did not open")
        assertProblem(try await node.call("POST", "/v1/collections/recs/search", token: token("serve"),
                                          json: #"{"pid":"\#(a)","k":3,"purpose":"product_recs"}"#), 404, "unknown_vector")

        // B, in an untouched bucket, reads as before.
        let foundB = try await lookup(email)
        XCTAssertEqual(foundB.json["pid"] as? String, b, foundB.text)
        let bFeatures = try await features(b)
        XCTAssertEqual(bFeatures.status, 200, bFeatures.text)
        XCTAssertEqual((bFeatures.json["features"] as? [String: Any])?["last_category"] as? String, "b-shoes")
        let nearB = try await searchPIDs(near: Self.vectorB)
        XCTAssertTrue(nearB.contains(b))

        // And the copy's bytes still hold A's ciphertexts: it is the key that is gone, not the data.
        let database = try Database(path: data + "/node.sqlite")
        XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM identities WHERE pid = ?", [a]) { $0.int64(0) }, 1)
    }

    /// The e-mail B was registered under, found by trying the candidates.
    func identifierOf(_ pid: String) async throws -> String {
        for index in 0..<20 {
            let found = try await lookup("b\(index)@example.com")
            if found.json["pid"] as? String == pid { return "b\(index)@example.com" }
        }
        return ""
    }

    func test_aSubjectRegisteredAfterItsErasure_startsANewChain_andSeesNothingOfTheErasedOne() async throws {
        try startNode(regions: ["eu"])
        try await defineFeature("last_category", type: "string", purpose: "product_recs")
        let first = try await register(email: "again@example.com")
        try await receipt(first, "grant", ["product_recs"])
        try await receipt(first, "revoke", ["product_recs"])
        try await receipt(first, "grant", ["product_recs"])
        let written = try await writeFeatures(first, #"{"last_category":"old-life"}"#)
        XCTAssertEqual(written.status, 200, written.text)
        let erased = try await node.call("POST", "/v1/erasures", token: token("privacy_officer"), json: #"{"pid":"\#(first)"}"#)
        XCTAssertEqual(erased.status, 202, erased.text)

        let registered = try await node.call("POST", "/v1/subjects", token: token("ingest"),
                                             json: #"{"identifier":{"kind":"email","value":"again@example.com"},"country":"DE"}"#)
        XCTAssertEqual(registered.status, 201, "a new subject is created: \(registered.text)")
        let second = try XCTUnwrap(registered.json["pid"] as? String)
        XCTAssertEqual(second, first, "the pid is the identifier's pseudonym (docs/DECISIONS.md)")

        let history = try await node.call("GET", "/v1/subjects/\(second)/consents", token: token("serve"))
        XCTAssertEqual(history.status, 200, history.text)
        XCTAssertEqual((history.json["receipts"] as? [Any])?.count, 0, "nothing of the erased chain: \(history.text)")
        let active = try await activePurposes(second)
        XCTAssertEqual(active, [])

        let appended = try await receipt(second, "grant", ["product_recs"])
        XCTAssertEqual(appended.status, 201, appended.text)
        XCTAssertEqual(appended.json["seq"] as? Int, 1, "a new chain from seq 1")
        let chain = try await node.call("GET", "/v1/subjects/\(second)/consents", token: token("serve"))
        XCTAssertEqual((chain.json["receipts"] as? [[String: Any]])?.compactMap { $0["seq"] as? Int }, [1])
        XCTAssertEqual(chain.json["chain_valid"] as? Bool, true)
        let (features, _) = try await readFeatures(second, purpose: "product_recs")
        XCTAssertNil(features["last_category"], "the erased value is not readable through the new subject")
    }

    /// The node rewrites its keyring on every erasure, so it is the keyring's only writer while it runs: a keys
    /// command saving a copy it read before could otherwise put a destroyed bucket key back on disk.
    func test_whileANodeRuns_keysRotateRefusesToRewriteItsKeyring() async throws {
        try startNode(regions: ["eu"])
        let keyring = federation.directory.file("eu-1/eu-1.keyring")
        let arguments = ["keys", "rotate", "--keyring", keyring, "--kind", "data", "--master-key-file", federation.directory.file("master.key")]
        let refused = try Binary.run(arguments)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("in use"), refused.stderr)
        XCTAssertEqual(node.stop(), 0)
        let rotated = try Binary.run(arguments)
        XCTAssertEqual(rotated.status, 0, rotated.stderr)
    }

    /// An erasure asked on another node of the region reaches the node that holds the subject, which rotates its
    /// own bucket: its keyring on disk no longer holds the version that wrapped the subject's key.
    func test_anErasureFannedOutToThePeerHoldingTheSubject_rotatesThePeersBucket() async throws {
        federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 2, gossip: true)
        node = try federation.start("eu-1")
        let other = try federation.start("eu-2")
        defer { other.kill() }
        var converged = false
        for _ in 0..<200 where !converged {
            var views: [[String]] = []
            for observer in [node!, other] {
                let view = try? await observer.call("GET", "/v1/cluster", token: token("serve"))
                let members = (view?.json["pools"] as? [String: Any])?["region"] as? [[String: Any]] ?? []
                views.append(members.compactMap { $0["name"] as? String }.sorted())
            }
            converged = views.allSatisfy { $0 == ["eu-1", "eu-2"] }
            if !converged { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertTrue(converged, "both nodes know the region's two members")
        let pid = try PID(parsing: try await register(email: "held.by.eu1@example.com"))
        let keyringPath = federation.directory.file("eu-1/eu-1.keyring")
        let master = try MasterKeySource.file(path: federation.directory.file("master.key")).load()
        let bucket = SubjectKeyBuckets.bucket(of: pid, count: SubjectKeyBuckets.defaultCount)
        XCTAssertEqual(try KeyringFile.load(path: keyringPath, master: master).buckets.versions(of: bucket).map(\.version), [1])

        let erased = try await other.call("POST", "/v1/erasures", token: token("privacy_officer"), json: #"{"pid":"\#(pid.rawValue)"}"#)
        XCTAssertEqual(erased.status, 202, erased.text)
        XCTAssertEqual(erased.json["status"] as? String, "complete", erased.text)
        XCTAssertEqual(try KeyringFile.load(path: keyringPath, master: master).buckets.versions(of: bucket).map(\.version), [2],
                       "eu-1 rotated the bucket and destroyed version 1 before it acked")
    }
}
