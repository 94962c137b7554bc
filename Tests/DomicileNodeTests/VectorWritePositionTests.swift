@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import DomicileVectors
import XCTest

/// Migration 16: a collection's write position. A vector write takes 1 + the
/// collection's position, so a written_seq names one version of one vector for
/// good — which a saved graph relies on to tell a vector it holds from one
/// written after it (docs/DECISIONS.md, "Graph snapshots").
final class VectorWritePositionTests: XCTestCase {
    let directory = TemporaryDirectory("vector-write-position")
    let now = Timestamp(milliseconds: 1_800_000_000_000)

    func collection(_ name: String, index: IndexKind) throws -> CollectionDefinition {
        CollectionDefinition(name: try Name(name, what: "collection name"), dimension: 2, metric: .l2,
                             purpose: try Purpose("fraud_prevention"), index: index, export: nil)
    }

    func test_deletingTheNewestVector_doesNotHandItsWrittenSeqOutAgain() throws {
        var keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        keyring.buckets = .generate(count: 2, createdAt: 1)
        let keys = try RegionKeys(keyring: keyring, clock: { 2 }, random: SecureRandomSource()) { _ in }
        let database = try Database(path: directory.file("positions.sqlite"))
        XCTAssertEqual(try Migrator(Array(NodeSchema.migrator.migrations.prefix(15))).migrate(database, appliedAt: 0), Array(1...15))
        var random = SecureRandom()
        let subjects = try (0..<4).map { index -> PID in
            let identifier = Identifier(kind: .email, normalized: "subject\(index)@example.com")
            let pid = keys.pseudonymizers.current.pid(for: identifier)
            try SubjectRecords.insert(pid: pid, identifier: identifier, keys: keys, now: now, using: &random, in: database)
            return pid
        }
        let faces = try collection("faces", index: .hnsw(HNSWSettings(m: 8, efConstruction: 32, ef: 16)))
        _ = try VectorRecords.upsert(faces, now: now, in: database)
        // Schema 15's rows: written_seq 1, 2, 3.
        for (seq, pid) in subjects.prefix(3).enumerated() {
            try database.execute("""
                INSERT INTO vectors (collection, pid, sealed_vector, basis, receipt_id, written_at, written_seq)
                VALUES ('faces', ?, x'00', 'legitimate_interest', NULL, 0, ?)
                """, [pid.rawValue, seq + 1])
        }
        XCTAssertEqual(try NodeSchema.migrator.migrate(database, appliedAt: 1), Array(16...NodeSchema.migrator.migrations.count))
        XCTAssertEqual(try VectorRecords.writePosition(faces.name, in: database), 3)

        // The newest vector deleted, then another written: seq 4, not 3 again.
        XCTAssertTrue(try VectorRecords.delete(collection: faces.name, pid: subjects[2], now: now, in: database))
        let grounds = ConsentGate.Grounds(basis: .legitimateInterest, receiptID: nil)
        for pid in [subjects[3], subjects[2]] {
            let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: keys, in: database))
            try VectorRecords.write([1, 2], collection: faces.name, pid: pid, key: key, grounds: grounds, now: now, using: &random, in: database)
        }
        XCTAssertEqual(try database.fetchAll("SELECT written_seq FROM vectors WHERE collection = 'faces' ORDER BY written_seq") { $0.int64(0) },
                       [1, 2, 4, 5])
        XCTAssertEqual(try VectorRecords.writePosition(faces.name, in: database), 5)
        // A collection never written to is at 0, and its first write takes 1.
        let taste = try collection("taste", index: .flat)
        _ = try VectorRecords.upsert(taste, now: now, in: database)
        XCTAssertEqual(try VectorRecords.writePosition(taste.name, in: database), 0)
        let key = try XCTUnwrap(try SubjectRecords.key(of: subjects[0], keys: keys, in: database))
        try VectorRecords.write([3, 4], collection: taste.name, pid: subjects[0], key: key, grounds: grounds, now: now, using: &random, in: database)
        XCTAssertEqual(try VectorRecords.writePosition(taste.name, in: database), 1)
        XCTAssertEqual(try database.tablesWithoutPrimaryKey(), [])
    }
}
