@testable import DomicileNode
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import XCTest

/// The node's own schema round-trips through changesets (the region log's
/// entries, docs/DECISIONS.md): writes captured on a leader database and
/// applied in order on a follower leave every row identical.
final class NodeSchemaChangesetTests: XCTestCase {
    let directory = TemporaryDirectory()

    func migrated(_ name: String) throws -> Database {
        let database = try Database(path: directory.file(name))
        try NodeSchema.migrator.migrate(database, appliedAt: 1_800_000_000)
        return database
    }

    /// A session cannot record a table without a PRIMARY KEY: its writes
    /// would not reach the followers. Since migration 10 every node table
    /// has one (a new table without one fails here).
    func test_tablesWithoutAPrimaryKey_areKnown() throws {
        XCTAssertEqual(try migrated("node.sqlite").tablesWithoutPrimaryKey(), [])
    }

    /// A follower inserts a batch's rows in the changeset's order, so its
    /// hidden rowids differ from the leader's: the latest of two releases in
    /// the same millisecond must not be chosen by them.
    func test_theLatestRelease_ofOneMillisecond_isTheSame_whateverOrderItsRowsWereInserted() throws {
        func latest(insertingIn order: [String], into name: String) throws -> String? {
            let database = try migrated(name)
            for releaseID in order {
                try database.execute("""
                    INSERT INTO aggregate_releases VALUES (?, 'subjects', 'eu', 'count', 'subjects', '{"value":1}', 'laplace', 0.5, 0, 2,
                                                          1800000000000)
                    """, [releaseID])
            }
            return try AggregateData.latest(try Name("subjects", what: "aggregate name"), of: try RegionID("eu"), in: database)?.releaseID
        }
        XCTAssertEqual(try latest(insertingIn: ["rl_b", "rl_a"], into: "one.sqlite"), "rl_b")
        XCTAssertEqual(try latest(insertingIn: ["rl_a", "rl_b"], into: "other.sqlite"), "rl_b")
    }

    func test_nodeWrites_capturedOnALeader_appliedOnAFollower_leaveIdenticalRows() throws {
        let leader = try migrated("leader.sqlite")
        let follower = try migrated("follower.sqlite")
        XCTAssertEqual(try follower.contentDump(), try leader.contentDump())
        let tables = try leader.fetchAll("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%'") { $0.text(0) }
        // As VectorRecords.write and EmbeddingExports write them: the next written_seq, the next charge seq.
        func writeVector(_ pid: String) -> String {
            """
            INSERT INTO vectors (collection, pid, sealed_vector, basis, receipt_id, written_at, written_seq)
                VALUES ('taste', '\(pid)', randomblob(48), 'consent', 'rc-1', 1800000000004,
                        (SELECT coalesce(max(written_seq), 0) + 1 FROM vectors WHERE collection = 'taste'))
                ON CONFLICT (collection, pid) DO UPDATE SET sealed_vector = excluded.sealed_vector, written_at = excluded.written_at,
                    written_seq = excluded.written_seq;
            """
        }
        func chargeEmbedding(_ pid: String) -> String {
            """
            INSERT INTO embedding_charges (pid, period, seq, collection, epsilon, delta, charged_at)
                VALUES ('\(pid)', '2027-01', (SELECT coalesce(max(seq), 0) + 1 FROM embedding_charges WHERE pid = '\(pid)' AND period = '2027-01'),
                        'taste', 1.5, 1e-6, 1800000000004);
            """
        }
        let transactions = [
            // Register, with an identity and an audit entry.
            """
            INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, created_at, wrap_bucket, wrap_version, life)
                VALUES ('pid-a', 1, randomblob(32), 1, randomblob(60), 1800000000001, 3, 1, 1);
            INSERT INTO identities VALUES ('pid-a', 'email', randomblob(48));
            INSERT INTO audit_log (at, principal, action, pid, outcome, request_id, prev_hash, hash)
                VALUES (1800000000001, 'crm', 'subject.register', 'pid-a', 'ok', 'r1', zeroblob(32), randomblob(32));
            """,
            // Grant two purposes; define and write a feature; a collection.
            """
            INSERT INTO consent_receipts (receipt_id, pid, life, seq, action, basis, source, collected_at, expires_at,
                                          recorded_at, prev_hash, hash)
                VALUES ('rc-1', 'pid-a', 1, 1, 'grant', 'consent', 'web', 1800000000002, NULL, 1800000000002, zeroblob(32), randomblob(32));
            INSERT INTO consent_receipt_purposes VALUES ('rc-1', 0, 'analytics'), ('rc-1', 1, 'product_recs');
            INSERT INTO consent_active VALUES ('pid-a', 'analytics', 'consent', 1800000000002, NULL, 'rc-1'),
                                              ('pid-a', 'product_recs', 'consent', 1800000000002, 1900000000000, 'rc-1');
            INSERT INTO feature_definitions VALUES ('ltv', 'number', 'analytics', 86400, 'confidential', 1800000000002);
            INSERT INTO features VALUES ('pid-a', 'ltv', 'analytics', randomblob(40), 'consent', 'rc-1', 1800000000003, 1800086400003);
            INSERT INTO collections VALUES ('taste', 8, 'cosine', 'product_recs', 'hnsw', 16, 200, 64, 1.5, 1e-6, NULL, 1800000000003, NULL);
            INSERT INTO privacy_charges VALUES ('ch-1', 'crm', '2027-01', 'laplace', 'pure', 0.5, 0.0, NULL, 'a charge', 1800000000004);
            INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, created_at) VALUES ('pid-c', 1, x'', 1, x'', 1);
            \(writeVector("pid-a"))
            \(writeVector("pid-c"))
            \(chargeEmbedding("pid-a"))
            """,
            // Rewrite a vector (to the end of the rebuild order), export it twice.
            """
            \(writeVector("pid-a"))
            \(chargeEmbedding("pid-a"))
            \(chargeEmbedding("pid-a"))
            """,
            // Revoke one purpose: a receipt, the active grant deleted, a redaction update.
            """
            INSERT INTO consent_receipts (receipt_id, pid, life, seq, action, basis, source, collected_at, expires_at,
                                          recorded_at, prev_hash, hash)
                VALUES ('rc-2', 'pid-a', 1, 2, 'revoke', NULL, 'web', 1800000000005, NULL, 1800000000005, randomblob(32), randomblob(32));
            INSERT INTO consent_receipt_purposes VALUES ('rc-2', 0, 'analytics');
            DELETE FROM consent_active WHERE pid = 'pid-a' AND purpose = 'analytics';
            DELETE FROM features WHERE pid = 'pid-a' AND purpose = 'analytics';
            UPDATE subjects SET wrap_version = 2, wrapped_key = randomblob(60) WHERE pid = 'pid-a';
            """,
            // Erase (receipts redacted), in one batch with another subject's registration.
            """
            INSERT INTO erasure_requests (erasure_id, requested_at, requested_by, origin_region, jurisdiction, due_at, link,
                                          status, origin_node, policy_version, link_hash, request_signature, public_key)
                VALUES ('er-1', 1800000000006, 'dpo', 'eu', 'gdpr', 1802592000006, NULL, 'pending', 'eu-1', 1, randomblob(32),
                        randomblob(64), randomblob(32));
            INSERT INTO subjects (pid, key_version, link, link_version, wrapped_key, created_at) VALUES ('pid-b', 1, x'', 1, x'', 1);
            INSERT INTO erasure_erased_pids VALUES ('er-1', 'pid-a');
            INSERT INTO erasure_regions VALUES ('er-1', 'eu', 'done');
            DELETE FROM consent_active WHERE pid = 'pid-a';
            DELETE FROM identities WHERE pid = 'pid-a';
            UPDATE consent_receipts SET redacted = 1, source = '' WHERE pid = 'pid-a';
            DELETE FROM consent_receipt_purposes WHERE receipt_id IN ('rc-1', 'rc-2');
            DELETE FROM vectors WHERE pid = 'pid-a';
            \(writeVector("pid-b"))
            \(writeVector("pid-c"))
            DELETE FROM embedding_charges WHERE pid = 'pid-a';
            \(chargeEmbedding("pid-c"))
            DELETE FROM subjects WHERE pid = 'pid-a';
            UPDATE erasure_requests SET status = 'complete', completed_at = 1800000000007, completion_signature = randomblob(64)
                WHERE erasure_id = 'er-1';
            """,
        ]
        for sql in transactions {
            let changeset = try leader.capturingChanges(in: tables) { try leader.executeScript(sql) }.changeset
            try follower.apply(changeset)
            XCTAssertEqual(try follower.contentDump(), try leader.contentDump())
        }
        XCTAssertEqual(try leader.fetchOne("SELECT count(*) FROM consent_receipts WHERE redacted = 1") { $0.int(0) }, 2, "the writes ran")
        XCTAssertEqual(try follower.fetchAll("SELECT pid, written_seq FROM vectors ORDER BY written_seq") { "\($0.text(0))#\($0.int(1))" },
                       ["pid-b#3", "pid-c#4"])
        XCTAssertEqual(try follower.fetchAll("SELECT pid, seq FROM embedding_charges") { "\($0.text(0))#\($0.int(1))" }, ["pid-c#1"])
    }
}
