@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import DomicileTestSupport
import XCTest

/// Migration 9 at the records layer: a database at schema 8 holding lists as
/// joined text (receipt purposes, erased pids, ack counts) is converted to
/// rows and reads back identically; a value that does not decode stops the
/// migration with a typed error instead of being dropped.
final class JoinedTextMigrationTests: XCTestCase {
    let directory = TemporaryDirectory("joined-text-migration")
    let eu = try! RegionID("eu")
    let key = try! Ed25519PrivateKey(seed: [UInt8](repeating: 7, count: 32))

    func pid(_ byte: UInt8) -> PID { PID(keyVersion: 1, region: eu, digest: [UInt8](repeating: byte, count: PID.digestByteCount)) }

    /// A subject's chain: a grant of two purposes, then a revoke of one.
    func receipts(of pid: PID) throws -> [ConsentReceipt] {
        let grant = ConsentReceipt.make(receiptID: "cr_\(pid.rawValue.suffix(4))_1", pid: pid, seq: 1, action: .grant,
                                        purposes: [try Purpose("product_recs"), try Purpose("analytics")], basis: .consent,
                                        source: "web-portal:v2", collectedAt: Timestamp(milliseconds: 1_000),
                                        expiresAt: Timestamp(milliseconds: 9_000), recordedAt: Timestamp(milliseconds: 1_001),
                                        previousHash: ReceiptChain.genesis)
        let revoke = ConsentReceipt.make(receiptID: "cr_\(pid.rawValue.suffix(4))_2", pid: pid, seq: 2, action: .revoke,
                                         purposes: [try Purpose("analytics")], basis: nil, source: "web-portal:v2",
                                         collectedAt: Timestamp(milliseconds: 2_000), expiresAt: nil,
                                         recordedAt: Timestamp(milliseconds: 2_001), previousHash: grant.hash)
        return [grant, revoke]
    }

    struct Erasure {
        let request: SignedErasureRequest
        let ack: ErasureAck
        let erasedPIDs: [String]
    }

    func erasure(of pids: [PID]) -> Erasure {
        let request = SignedErasureRequest.signed(erasureID: "er_1", requestedAt: Timestamp(milliseconds: 10), dueAt: Timestamp(milliseconds: 20),
                                                  jurisdiction: "gdpr", originRegion: eu, originNode: "eu-1", policyVersion: 1,
                                                  linkHash: SignedErasureRequest.linkHash(pid: pids[0]), expectedNodes: [eu: ["eu-1"]], key: key)
        let ack = ErasureAck.signed(for: request, region: eu, node: "eu-1", erasedAt: Timestamp(milliseconds: 15),
                                    counts: ["consent_grants": 1, "consent_receipts": 2, "features": 0, "subjects": 2],
                                    walTruncated: true, policyVersion: 1, key: key)
        return Erasure(request: request, ack: ack, erasedPIDs: pids.map(\.rawValue).sorted())
    }

    /// A database at schema 8 with rows in the old encodings.
    func databaseAtSchema8(_ name: String, receipts: [ConsentReceipt], purposesText: ((ConsentReceipt) -> String)? = nil,
                           erasure: Erasure, countsText: String? = nil) throws -> Database {
        let database = try Database(path: directory.file(name))
        XCTAssertEqual(try Migrator(Array(NodeSchema.migrator.migrations.prefix(8))).migrate(database, appliedAt: 0), Array(1...8))
        let owner = receipts[0].pid
        try database.execute("""
            INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, created_at, life) VALUES (?, 1, ?, 1, ?, 0, 1)
            """, [owner.rawValue, [UInt8](repeating: 1, count: 32), [UInt8](repeating: 2, count: 60)])
        for receipt in receipts {
            try database.execute("""
                INSERT INTO consent_receipts (receipt_id, pid, life, seq, action, purposes, basis, source, collected_at, expires_at,
                    recorded_at, prev_hash, hash, redacted)
                VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
                """, [receipt.receiptID, receipt.pid.rawValue, receipt.seq, receipt.action.rawValue,
                      purposesText?(receipt) ?? receipt.purposes.map(\.rawValue).joined(separator: ","), receipt.basis?.rawValue,
                      receipt.source, receipt.collectedAt.milliseconds, receipt.expiresAt?.milliseconds, receipt.recordedAt.milliseconds,
                      receipt.previousHash, receipt.hash])
        }
        let request = erasure.request
        let completion = ErasureCompletion.signature(request: request, completedAt: Timestamp(milliseconds: 16), acks: [erasure.ack], key: key)
        try database.execute("""
            INSERT INTO erasure_requests (erasure_id, requested_at, requested_by, origin_region, jurisdiction, due_at, link, erased_pids,
                status, completed_at, origin_node, policy_version, link_hash, request_signature, public_key, completion_signature)
            VALUES (?, ?, 'privacy_officer', 'eu', 'gdpr', ?, NULL, ?, 'complete', 16, 'eu-1', 1, ?, ?, ?, ?)
            """, [request.erasureID, request.requestedAt.milliseconds, request.dueAt.milliseconds, erasure.erasedPIDs.joined(separator: ","),
                  request.linkHash, request.signature, request.publicKey.rawRepresentation, completion])
        try database.execute("INSERT INTO erasure_regions (erasure_id, region, status) VALUES ('er_1', 'eu', 'erased')")
        try database.execute("INSERT INTO erasure_expected_nodes (erasure_id, region, node) VALUES ('er_1', 'eu', 'eu-1')")
        let ack = erasure.ack
        try database.execute("""
            INSERT INTO erasure_node_acks (erasure_id, region, node, scope, request_hash, erased_at, counts, link_hash, wal_truncated,
                policy_version, signature, public_key)
            VALUES ('er_1', 'eu', 'eu-1', 'node', ?, ?, ?, ?, 1, 1, ?, ?)
            """, [ack.requestHash, ack.erasedAt.milliseconds,
                  countsText ?? ack.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                  ack.linkHash, ack.signature, ack.publicKey.rawRepresentation])
        return database
    }

    func columns(of table: String, in database: Database) throws -> [String] {
        try database.fetchAll("SELECT name FROM pragma_table_info(?)", [table]) { $0.text(0) }
    }

    func assertCorrupt(_ expression: @autoclosure () throws -> Any, _ column: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            XCTAssertEqual((error as? StorageError)?.isCorrupt, true, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(column), "\(error)", file: file, line: line)
        }
    }

    func test_aSchema8Database_migratesItsJoinedText_toRows_thatReadBackIdentically() throws {
        let owner = pid(1)
        let chain = try receipts(of: owner)
        let erasure = erasure(of: [pid(3), pid(2)])
        let database = try databaseAtSchema8("old.sqlite", receipts: chain, erasure: erasure)

        XCTAssertEqual(try NodeSchema.migrator.migrate(database, appliedAt: 1), Array(9...NodeSchema.migrator.migrations.count))

        let migrated = try ConsentRecords.receipts(of: owner, in: database)
        XCTAssertEqual(migrated, chain)
        XCTAssertEqual(migrated.map { $0.purposes.map(\.rawValue) }, [["analytics", "product_recs"], ["analytics"]])
        XCTAssertTrue(ReceiptChain.verify(migrated))
        let request = try XCTUnwrap(try ErasureRecords.find("er_1", in: database))
        XCTAssertEqual(request.erasedPIDs, erasure.erasedPIDs)
        XCTAssertEqual(request.acks, [erasure.ack])
        XCTAssertTrue(request.acks[0].isValid)
        XCTAssertEqual(request.signed?.hash, erasure.request.hash)
        XCTAssertNotNil(request.certificate)
        XCTAssertEqual(try database.fetchAll("SELECT table_name, count FROM erasure_ack_counts ORDER BY table_name") { "\($0.text(0))=\($0.int64(1))" },
                       ["consent_grants=1", "consent_receipts=2", "features=0", "subjects=2"])
        XCTAssertFalse(try columns(of: "consent_receipts", in: database).contains("purposes"))
        XCTAssertFalse(try columns(of: "erasure_requests", in: database).contains("erased_pids"))
        XCTAssertFalse(try columns(of: "erasure_node_acks", in: database).contains("counts"))
    }

    func test_newReceiptsAndAcks_roundTripThroughRows_andErasureRedactsTheReceiptsPurposes() throws {
        let owner = pid(4)
        let database = try Database(path: directory.file("new.sqlite"))
        try NodeSchema.migrator.migrate(database, appliedAt: 0)
        try database.execute("""
            INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, created_at, life) VALUES (?, 1, ?, 1, ?, 0, 1)
            """, [owner.rawValue, [UInt8](repeating: 1, count: 32), [UInt8](repeating: 2, count: 60)])
        let chain = try receipts(of: owner)
        for receipt in chain { try ConsentRecords.append(receipt, gpcPurposes: [], now: Timestamp(milliseconds: 3_000), in: database) }
        XCTAssertEqual(try ConsentRecords.receipts(of: owner, in: database), chain)
        let erasure = erasure(of: [owner])
        try ErasureRecords.insert(erasure.request, requestedBy: "privacy_officer", erasedPIDs: erasure.erasedPIDs, counts: erasure.ack.counts,
                                  in: database)
        XCTAssertEqual(try ErasureRecords.localCounts(of: erasure.request.erasureID, in: database), erasure.ack.counts)
        let recorded = try ErasureRecords.record(erasure.ack, here: erasure.request.originRegion, completer: "eu-1", key: key, now: Timestamp(milliseconds: 16), in: database)
        XCTAssertEqual(recorded.acks, [erasure.ack])
        XCTAssertEqual(recorded.erasedPIDs, [owner.rawValue])
        XCTAssertEqual(recorded.status, .complete)

        let counts = try ErasureRecords.eraseSubject(owner, vectors: VectorCollections(), now: Timestamp(milliseconds: 1), in: database)
        XCTAssertEqual(counts["consent_receipts"], 2)
        XCTAssertEqual(try database.fetchOne("SELECT count(*) FROM consent_receipt_purposes") { $0.int64(0) }, 0)
        let redacted = try ConsentRecords.receipts(of: owner, in: database)
        XCTAssertEqual(redacted.map(\.redacted), [true, true])
        XCTAssertEqual(redacted.map(\.purposes), [[], []])
        XCTAssertEqual(redacted.map(\.hash), chain.map(\.hash))
        XCTAssertTrue(ReceiptChain.verify(redacted))
    }

    func test_oldTextThatDoesNotDecode_stopsTheMigration_withCorruptNamingTheColumn_andChangesNothing() throws {
        let owner = pid(5)
        let chain = try receipts(of: owner)
        let badPurpose = try databaseAtSchema8("bad-purpose.sqlite", receipts: chain, purposesText: { _ in "analytics,Not A Purpose" },
                                               erasure: erasure(of: [owner]))
        assertCorrupt(try NodeSchema.migrator.migrate(badPurpose, appliedAt: 1), "consent_receipts.purposes")
        XCTAssertEqual(try badPurpose.fetchOne("SELECT max(version) FROM schema_migrations") { $0.int(0) }, 8)
        XCTAssertTrue(try columns(of: "consent_receipts", in: badPurpose).contains("purposes"))

        let badCounts = try databaseAtSchema8("bad-counts.sqlite", receipts: chain, erasure: erasure(of: [owner]),
                                              countsText: "features=0,subjects=one")
        assertCorrupt(try NodeSchema.migrator.migrate(badCounts, appliedAt: 1), "erasure_node_acks.counts")
        let twice = try databaseAtSchema8("twice-counted.sqlite", receipts: chain, erasure: erasure(of: [owner]),
                                          countsText: "subjects=1,subjects=1")
        assertCorrupt(try NodeSchema.migrator.migrate(twice, appliedAt: 1), "erasure_node_acks.counts")
        XCTAssertEqual(try twice.fetchOne("SELECT counts FROM erasure_node_acks") { $0.text(0) }, "subjects=1,subjects=1")
    }

    func test_storedRowsThatDoNotDecode_areCorrupt_neverSkipped() throws {
        let owner = pid(6)
        let database = try databaseAtSchema8("tampered.sqlite", receipts: try receipts(of: owner), erasure: erasure(of: [owner]))
        try NodeSchema.migrator.migrate(database, appliedAt: 1)

        let grantPurpose = "SELECT receipt_id FROM consent_receipts WHERE seq = 1"
        try database.execute("UPDATE consent_receipt_purposes SET purpose = 'Not A Purpose' WHERE position = 1 AND receipt_id = (\(grantPurpose))")
        assertCorrupt(try ConsentRecords.receipts(of: owner, in: database), "consent_receipt_purposes.purpose")
        try database.execute("UPDATE consent_receipt_purposes SET purpose = 'product_recs' WHERE position = 1 AND receipt_id = (\(grantPurpose))")
        XCTAssertTrue(ReceiptChain.verify(try ConsentRecords.receipts(of: owner, in: database)))
        try database.execute("DELETE FROM consent_receipt_purposes WHERE position = 0 AND receipt_id = (\(grantPurpose))")
        assertCorrupt(try ConsentRecords.receipts(of: owner, in: database), "consent_receipt_purposes.position")

        try database.execute("UPDATE erasure_erased_pids SET pid = 'not-a-pid'")
        assertCorrupt(try ErasureRecords.find("er_1", in: database), "erasure_erased_pids.pid")
    }
}
