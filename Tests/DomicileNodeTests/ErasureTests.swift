@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

final class ErasureTests: NodeTestCase {
    func erase(_ json: String) async throws -> NodeProcess.Response {
        try await node.call("POST", "/v1/erasures", token: token("privacy_officer"), json: json)
    }

    /// Every blob of `pid`'s rows that must not survive its erasure: its
    /// wrapped key and every ciphertext sealed under it.
    func sensitiveBlobs(of pid: String, in database: Database) throws -> [Data] {
        var blobs = try database.fetchAll("SELECT wrapped_key FROM subjects WHERE pid = ?", [pid]) { Data($0.blob(0)) }
        blobs += try database.fetchAll("SELECT sealed_value FROM identities WHERE pid = ?", [pid]) { Data($0.blob(0)) }
        blobs += try database.fetchAll("SELECT sealed_value FROM features WHERE pid = ?", [pid]) { Data($0.blob(0)) }
        return blobs
    }

    func dataDirectoryContents() throws -> [(String, Data)] {
        let directory = federation.dataDirectory("eu-1")
        return try FileManager.default.contentsOfDirectory(atPath: directory).map {
            ($0, try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)))
        }
    }

    func test_erasureByIdentifier_removesEverything_keepsTheChainVerifiable_andSignsACertificate() async throws {
        try startNode()
        for name in ["last_category", "visits", "last_seen_day", "basket_value"] {
            try await defineFeature(name, type: name == "visits" || name == "basket_value" ? "number" : "string", purpose: "product_recs")
        }
        let pid = try await register(email: "erase.me@example.com")
        let neighbour = try await register(email: "stays@example.com")
        for subject in [pid, neighbour] {
            try await receipt(subject, "grant", ["product_recs"])
            let written = try await writeFeatures(subject, #"{"last_category":"shoes","visits":7,"last_seen_day":"2026-11-20","basket_value":19.5}"#)
            XCTAssertEqual(written.status, 200, written.text)
        }
        try await receipt(pid, "revoke", ["marketing_email"])
        let reid = try await node.call("POST", "/v1/reidentifications", token: token("privacy_officer"),
                                       json: #"{"pid":"\#(pid)","reason":"fraud case","ticket":"SEC-9"}"#)
        let reidID = try XCTUnwrap(reid.json["id"] as? String)

        let database = try Database(path: federation.dataDirectory("eu-1") + "/node.sqlite")
        let blobs = try sensitiveBlobs(of: pid, in: database)
        XCTAssertEqual(blobs.count, 6, "one wrapped key, one identity, four feature values")
        XCTAssertTrue(try dataDirectoryContents().contains { _, data in blobs.allSatisfy { data.range(of: $0) != nil } },
                      "the scan finds the blobs while they exist")

        let response = try await erase(#"{"identifier":{"kind":"email","value":"  ERASE.me@Example.com"}}"#)
        XCTAssertEqual(response.status, 202, response.text)
        XCTAssertEqual(response.json["status"] as? String, "complete")
        XCTAssertEqual(response.json["regions"] as? [String: String], ["eu": "erased"])
        XCTAssertEqual(response.json["jurisdiction"] as? String, "gdpr")
        let erasureID = try XCTUnwrap(response.json["erasure_id"] as? String)
        let certificate = try XCTUnwrap(response.json["certificate"] as? [String: Any])
        let acks = try XCTUnwrap(certificate["acks"] as? [[String: Any]])
        XCTAssertEqual(acks.count, 1)
        // The node certifies itself only, and the signed request says which nodes of which regions had to ack.
        XCTAssertEqual(acks[0]["scope"] as? String, "node")
        XCTAssertEqual(acks[0]["node"] as? String, "eu-1")
        XCTAssertEqual(certificate["expected_regions"] as? [String], ["eu"])
        XCTAssertEqual(certificate["expected_nodes"] as? [String: [String]], ["eu": ["eu-1"]])
        XCTAssertEqual(certificate["origin_node"] as? String, "eu-1")
        XCTAssertEqual(acks[0]["link_hash"] as? String, certificate["link_hash"] as? String)
        XCTAssertEqual((certificate["link_hash"] as? String)?.count, 64)
        XCTAssertNotNil(certificate["request_signature"] as? String)
        XCTAssertNotNil(certificate["completion_signature"] as? String)
        XCTAssertEqual(acks[0]["counts"] as? [String: Int], [
            "subjects": 1, "identities": 1, "features": 4, "consent_grants": 1, "consent_receipts": 2, "reidentifications": 1, "vectors": 0,
        ])
        let requestedAt = try XCTUnwrap(response.json["requested_at"] as? String)
        let dueAt = try XCTUnwrap(response.json["due_at"] as? String)
        XCTAssertEqual(try date(dueAt).timeIntervalSince(try date(requestedAt)), 30 * 86_400, "GDPR: one month (30 days)")

        // Nothing of the subject is left in any file of the data directory: not in a table, not in the WAL, not in a free page.
        for (file, data) in try dataDirectoryContents() {
            for blob in blobs { XCTAssertNil(data.range(of: blob), "\(file) still holds an erased ciphertext or key") }
            XCTAssertNil(data.range(of: Data("erase.me@example.com".utf8)), file)
        }
        XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM features WHERE pid = ?", [pid]) { $0.int64(0) }, 0)
        // The WAL was checkpointed and truncated before the node signed its ack (which says so); it holds only the ack's commit.
        XCTAssertEqual(acks[0]["wal_truncated"] as? Bool, true)

        assertProblem(try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve")), 404, "unknown_subject")
        assertProblem(try await node.call("GET", "/v1/subjects/\(pid)/features?purpose=product_recs", token: token("serve")), 404,
                      "unknown_subject")
        let lookup = try await node.call("POST", "/v1/subjects/lookup", token: token("serve"),
                                         json: #"{"identifier":{"kind":"email","value":"erase.me@example.com"}}"#)
        assertProblem(lookup, 404, "unknown_subject")
        // The receipts remain as hash links only, and the chain still verifies.
        let history = try await node.call("GET", "/v1/subjects/\(pid)/consents", token: token("privacy_officer"))
        XCTAssertEqual(history.json["chain_valid"] as? Bool, true)
        let receipts = try XCTUnwrap(history.json["receipts"] as? [[String: Any]])
        XCTAssertEqual(receipts.count, 2)
        XCTAssertTrue(receipts.allSatisfy { $0["redacted"] as? Bool == true && $0["action"] == nil && $0["purposes"] == nil })
        // The neighbour is untouched; the cancelled re-identification releases nothing.
        await XCTAssertEqualAsync(try await readFeatures(neighbour, purpose: "product_recs").features.count, 4)
        let cancelled = try await node.call("GET", "/v1/reidentifications/\(reidID)", token: token("privacy_officer"))
        XCTAssertEqual(cancelled.json["status"] as? String, "cancelled")
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/audit/verify", token: token("privacy_officer")).json["valid"] as? Bool, true)

        // The certificate verifies offline, against the node's exported public key, and fails once altered.
        let fetched = try await node.call("GET", "/v1/erasures/\(erasureID)", token: token("privacy_officer"))
        XCTAssertEqual(fetched.json["status"] as? String, "complete")
        let certificateFile = federation.directory.file("certificate.json")
        try Data(fetched.body).write(to: URL(fileURLWithPath: certificateFile))
        let keys = try Binary.run(["keys", "export-public", "--keyring", federation.directory.file("eu-1/eu-1.keyring"),
                                   "--master-key-file", federation.directory.file("master.key")])
        XCTAssertEqual(keys.status, 0, keys.stderr)
        let keysFile = federation.directory.file("eu-keys.json")
        try Data(keys.stdout.utf8).write(to: URL(fileURLWithPath: keysFile))
        let verified = try Binary.run(["erasure", "verify", certificateFile, "--trust", keysFile])
        XCTAssertEqual(verified.status, 0, verified.stderr)
        XCTAssertTrue(verified.stdout.contains("every key trusted"), verified.stdout)
        let tampered = fetched.text.replacingOccurrences(of: #""features":4"#, with: #""features":3"#)
        XCTAssertNotEqual(tampered, fetched.text)
        try Data(tampered.utf8).write(to: URL(fileURLWithPath: certificateFile))
        let refused = try Binary.run(["erasure", "verify", certificateFile, "--trust", keysFile])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("signature does not match"), refused.stderr)
        // Backdating the request breaks the origin's signature over it.
        let requested = try XCTUnwrap((fetched.json["certificate"] as? [String: Any])?["requested_at"] as? String)
        let backdated = fetched.text.replacingOccurrences(of: #""requested_at":"\#(requested)""#, with: #""requested_at":"2026-01-01T00:00:00Z""#)
        XCTAssertNotEqual(backdated, fetched.text)
        try Data(backdated.utf8).write(to: URL(fileURLWithPath: certificateFile))
        let backdatedRun = try Binary.run(["erasure", "verify", certificateFile, "--trust", keysFile])
        XCTAssertEqual(backdatedRun.status, 1)
        XCTAssertTrue(backdatedRun.stderr.contains("the signature does not match the request"), backdatedRun.stderr)

        let complete = try await node.call("GET", "/v1/erasures?status=complete", token: token("privacy_officer"))
        XCTAssertEqual((complete.json["erasures"] as? [[String: Any]])?.compactMap { $0["erasure_id"] as? String }, [erasureID])
        let overdue = try await node.call("GET", "/v1/erasures?status=overdue", token: token("privacy_officer"))
        XCTAssertEqual((overdue.json["erasures"] as? [[String: Any]])?.count, 0)
        let erasedEvents = try await auditEvents().filter { $0["action"] as? String == "erasure.erase" }
        XCTAssertEqual(erasedEvents.map { $0["pid"] as? String }, [pid])
    }

    func test_erasureRequests_areValidated_andRoutedToTheHomeRegion() async throws {
        try startNode()
        let pid = try await register(email: "by-pid@example.com")
        let byPID = try await erase(#"{"pid":"\#(pid)","jurisdiction":"cpra"}"#)
        XCTAssertEqual(byPID.status, 202, byPID.text)
        let due = try date(try XCTUnwrap(byPID.json["due_at"] as? String))
        XCTAssertEqual(due.timeIntervalSince(try date(try XCTUnwrap(byPID.json["requested_at"] as? String))), 45 * 86_400)
        // Erasing again (or a subject never known here) completes with nothing to erase.
        let again = try await erase(#"{"pid":"\#(pid)"}"#)
        XCTAssertEqual(((again.json["certificate"] as? [String: Any])?["acks"] as? [[String: Any]])?.first?["counts"] as? [String: Int],
                       ["subjects": 0, "identities": 0, "features": 0, "consent_grants": 0, "consent_receipts": 0, "reidentifications": 0, "vectors": 0])

        assertProblem(try await erase(#"{"pid":"psn:v1:us:\#(String(repeating: "B", count: 42))A"}"#), 421, "misdirected")
        assertProblem(try await erase(#"{"pid":"not-a-pid"}"#), 400, "invalid_pid")
        assertProblem(try await erase(#"{}"#), 422, "invalid_request")
        assertProblem(try await erase(#"{"pid":"\#(pid)","identifier":{"kind":"email","value":"a@example.com"}}"#), 422, "invalid_request")
        assertProblem(try await erase(#"{"identifier":{"kind":"email","value":"nope"}}"#), 422, "invalid_identifier")
        assertProblem(try await erase(#"{"pid":"\#(pid)","jurisdiction":"atlantis"}"#), 422, "invalid_request")
        assertProblem(try await node.call("POST", "/v1/erasures", token: token("admin"), json: #"{"pid":"\#(pid)"}"#), 403, "forbidden")
        assertProblem(try await node.call("GET", "/v1/erasures/er_nope", token: token("privacy_officer")), 404, "unknown_erasure")
        assertProblem(try await node.call("GET", "/v1/erasures?status=lost", token: token("privacy_officer")), 400, "invalid_query")
    }

    /// Until the region log replicates a region, each node signs only for
    /// itself: the node asked sends the erasure to the region's other node,
    /// each erases what it holds and acks, and the certificate holds both
    /// acks. With the other node gone, the request stays pending, naming it.
    func test_inARegionOfTwoNodes_eachNodeErasesAndCertifiesItself_andASilentNodeKeepsTheRequestPending() async throws {
        federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 2, gossip: true)
        node = try federation.start("eu-1")
        let other = try federation.start("eu-2")
        defer { other.kill() }
        let officer = token("privacy_officer")
        func regionView(of observer: NodeProcess) async -> [String] {
            let view = try? await observer.call("GET", "/v1/cluster", token: token("serve"))
            let members = (view?.json["pools"] as? [String: Any])?["region"] as? [[String: Any]] ?? []
            return members.compactMap { $0["name"] as? String }.sorted()
        }
        var converged = false
        for _ in 0..<200 where !converged {
            let views = [await regionView(of: node), await regionView(of: other)]
            converged = views.allSatisfy { $0 == ["eu-1", "eu-2"] }
            if !converged { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertTrue(converged, "both nodes know the region's two members")
        let pid = try await register(email: "held.by.eu1@example.com")

        // Asked on eu-2, which does not hold the subject: eu-1 erases it, and each node signs what it erased.
        let elsewhere = try await other.call("POST", "/v1/erasures", token: officer,
                                             json: #"{"identifier":{"kind":"email","value":"held.by.eu1@example.com"}}"#)
        XCTAssertEqual(elsewhere.status, 202, elsewhere.text)
        XCTAssertEqual(elsewhere.json["status"] as? String, "complete", elsewhere.text + other.logLines.suffix(5).joined(separator: "\n"))
        XCTAssertEqual(elsewhere.json["expected_nodes"] as? [String: [String]], ["eu": ["eu-1", "eu-2"]])
        XCTAssertEqual(elsewhere.json["waiting_for_nodes"] as? [String: [String]], [:])
        let certificate = try XCTUnwrap(elsewhere.json["certificate"] as? [String: Any])
        let acks = try XCTUnwrap(certificate["acks"] as? [[String: Any]])
        let subjectsErased = Dictionary(uniqueKeysWithValues: acks.map {
            ($0["node"] as? String ?? "?", ($0["counts"] as? [String: Any])?["subjects"] as? Int ?? -1)
        })
        XCTAssertEqual(subjectsErased, ["eu-1": 1, "eu-2": 0], "each node vouches for what it held")
        XCTAssertEqual(Set(acks.compactMap { $0["scope"] as? String }), ["node"])
        assertProblem(try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve")), 404, "unknown_subject")
        let audit = try await node.call("GET", "/v1/audit?limit=1000", token: officer)
        let events = try XCTUnwrap(audit.json["events"] as? [[String: Any]])
        XCTAssertTrue(events.contains { $0["action"] as? String == "erasure.erase" && $0["pid"] as? String == pid
                                        && $0["principal"] as? String == "node:eu-2" }, "eu-1 audits the erasure it was sent")

        // The certificate verifies offline only with both nodes' keys.
        let certificateFile = federation.directory.file("certificate.json")
        try JSONSerialization.data(withJSONObject: certificate).write(to: URL(fileURLWithPath: certificateFile))
        let trust = try federation.trustArguments(for: ["eu-1", "eu-2"])
        let verified = try Binary.run(["erasure", "verify", certificateFile] + trust)
        XCTAssertEqual(verified.status, 0, verified.stderr + verified.stdout)
        let halfTrusted = try Binary.run(["erasure", "verify", certificateFile] + trust.prefix(2))
        XCTAssertEqual(halfTrusted.status, 1, "eu-2's ack is not trusted with eu-1's keys alone")

        // An order not sealed by a node of the region is refused, and erases nothing.
        let second = try await register(email: "second@example.com")
        let forged = try await node.call("POST", "/internal/v1/erasures", token: nil, json: #"{"pid":"\#(second)"}"#)
        XCTAssertEqual(forged.status, 403, forged.text)
        XCTAssertEqual(forged.json["code"] as? String, "not_a_region_node")
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/subjects/\(second)", token: token("serve")).status, 200)

        // With eu-2 gone, eu-1 erases what it holds, signs for itself, and waits for eu-2.
        other.kill()
        let holder = try await node.call("POST", "/v1/erasures", token: officer, json: #"{"pid":"\#(second)"}"#)
        XCTAssertEqual(holder.status, 202, holder.text)
        XCTAssertEqual(holder.json["status"] as? String, "pending")
        XCTAssertEqual(holder.json["regions"] as? [String: String], ["eu": "pending"])
        XCTAssertEqual(holder.json["waiting_for_nodes"] as? [String: [String]], ["eu": ["eu-2"]])
        XCTAssertNil(holder.json["certificate"])
        assertProblem(try await node.call("GET", "/v1/subjects/\(second)", token: token("serve")), 404, "unknown_subject")
        let erasureID = try XCTUnwrap(holder.json["erasure_id"] as? String)
        let pending = try await node.call("GET", "/v1/erasures?status=pending", token: officer)
        XCTAssertEqual((pending.json["erasures"] as? [[String: Any]])?.compactMap { $0["erasure_id"] as? String }, [erasureID])
    }

    /// The route the nodes of a region erase through obeys only a sealed,
    /// fresh order about the subject its signed link hash names; anything
    /// else is refused and erases nothing.
    func test_regionErasureOrders_thatAreStaleOrAboutAnotherSubject_areRefused_andEraseNothing() async throws {
        try startNode()
        let pid = try await register(email: "kept@example.com")
        let other = try await register(email: "other@example.com")
        let master = try MasterKeySource.file(path: federation.directory.file("master.key")).load()
        let sealing = try KeyringFile.load(path: federation.directory.file("eu-1/eu-1.keyring"), master: master).keySet(.regionGossip)
        let eu = try RegionID("eu")
        let origin = try Ed25519PrivateKey(seed: [UInt8](repeating: 7, count: 32))
        let now = Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1_000))
        func send(requestedAt: Timestamp, about named: String) async throws -> NodeProcess.Response {
            let signed = SignedErasureRequest.signed(
                erasureID: "er_order", requestedAt: requestedAt, dueAt: requestedAt.adding(seconds: 86_400), jurisdiction: "gdpr",
                originRegion: eu, originNode: "eu-2", policyVersion: 1, linkHash: SignedErasureRequest.linkHash(pid: try PID(parsing: named)),
                expectedNodes: [eu: ["eu-1", "eu-2"]], key: origin)
            let order = try JSONEncoder().encode(RegionErasure.Order(request: signed, pid: pid, identifier: nil))
            let body = sealing.seal(Array(order), associatedData: RegionErasure.orderAssociatedData)
            let response = try await node.client.send("POST", RegionErasure.path, to: node.address,
                                                      headers: ["Content-Type": "application/octet-stream"], body: body)
            return NodeProcess.Response(status: response.status, headers: response.headers, body: response.body)
        }
        assertProblem(try await send(requestedAt: now.adding(seconds: -3_600), about: pid), 422, "stale_order")
        assertProblem(try await send(requestedAt: now, about: other), 422, "invalid_order")
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve")).status, 200)

        let obeyed = try await send(requestedAt: now, about: pid)
        XCTAssertEqual(obeyed.status, 200)
        let answer = try JSONDecoder().decode(RegionErasure.Answer.self, from: Data(
            try sealing.open(obeyed.body, associatedData: RegionErasure.answerAssociatedData)))
        let ack = try answer.ack.ack(erasureID: "er_order", index: 0)
        XCTAssertEqual(ack.node, "eu-1")
        XCTAssertEqual(ack.counts["subjects"], 1)
        assertProblem(try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve")), 404, "unknown_subject")
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/subjects/\(other)", token: token("serve")).status, 200)
    }

    /// A node that has not joined its region does not know the nodes an
    /// erasure must reach: it signs nothing and records nothing.
    func test_aNodeThatHasNotJoinedItsRegion_refusesErasure_withNotReady() async throws {
        federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 2, gossip: true)
        node = try federation.start("eu-1")  // its seed, eu-2, never starts
        let pid = try await register(email: "alone@example.com")
        assertProblem(try await erase(#"{"pid":"\#(pid)"}"#), 503, "not_ready")
        let listed = try await node.call("GET", "/v1/erasures", token: token("privacy_officer"))
        XCTAssertEqual((listed.json["erasures"] as? [[String: Any]])?.count, 0)
        await XCTAssertEqualAsync(try await node.call("GET", "/v1/subjects/\(pid)", token: token("serve")).status, 200)
    }

    func date(_ text: String) throws -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return try XCTUnwrap(formatter.date(from: text))
    }
}
