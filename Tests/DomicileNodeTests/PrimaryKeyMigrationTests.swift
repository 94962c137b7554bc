@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicileStorage
import DomicileTestSupport
import DomicileVectors
import XCTest

/// Migration 10 at the records layer: `vectors` and `embedding_charges`, the
/// two tables a SQLite session could not record, get primary keys. A
/// database at schema 9 reads back identically, and its vectors come back in
/// the order they were written (the rebuild order at start), which the old
/// schema kept in hidden rowids that a changeset does not carry.
final class PrimaryKeyMigrationTests: XCTestCase {
    let directory = TemporaryDirectory("primary-key-migration")
    let now = Timestamp(milliseconds: 1_800_000_000_000)

    func makeKeys() throws -> RegionKeys {
        var keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        keyring.buckets = .generate(count: 2, createdAt: 1)
        return try RegionKeys(keyring: keyring, clock: { 2 }, random: SecureRandomSource()) { _ in }
    }

    func collection(_ name: String, index: IndexKind) throws -> CollectionDefinition {
        CollectionDefinition(name: try Name(name, what: "collection name"), dimension: 2, metric: .l2,
                             purpose: try Purpose("fraud_prevention"), index: index, export: nil)
    }

    func databaseAtSchema9(_ name: String) throws -> Database {
        let database = try Database(path: directory.file(name))
        XCTAssertEqual(try Migrator(Array(NodeSchema.migrator.migrations.prefix(9))).migrate(database, appliedAt: 0), Array(1...9))
        return database
    }

    /// A collection defined as schema 9's code did (before target_recall).
    func defineAtSchema9(_ definition: CollectionDefinition, in database: Database) throws {
        let (kind, m, efConstruction, ef): (String, Int, Int, Int) = switch definition.index {
        case .flat: ("flat", 0, 0, 0)
        case .hnsw(let settings): ("hnsw", settings.m, settings.efConstruction, settings.ef)
        }
        try database.execute("""
            INSERT INTO collections (name, dimension, metric, purpose, index_kind, m, ef_construction, ef, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [definition.name.rawValue, definition.dimension, definition.metric.rawValue, definition.purpose.rawValue, kind, m,
                  efConstruction, ef, now.milliseconds])
    }

    /// A vector written as schema 9's code wrote it: delete, then insert, so
    /// a rewrite takes a new rowid and moves to the end.
    func writeAtSchema9(_ vector: [Float], collection: Name, pid: PID, keys: RegionKeys, in database: Database) throws {
        let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: keys, in: database))
        var random = SecureRandom()
        let sealed = Envelope.seal(VectorRecords.encode(vector), key: key, associatedData: VectorRecords.associatedData(collection, pid),
                                   using: &random)
        try database.execute("DELETE FROM vectors WHERE collection = ? AND pid = ?", [collection.rawValue, pid.rawValue])
        try database.execute("""
            INSERT INTO vectors (collection, pid, sealed_vector, basis, receipt_id, written_at) VALUES (?, ?, ?, 'legitimate_interest', NULL, ?)
            """, [collection.rawValue, pid.rawValue, sealed, now.milliseconds])
    }

    /// The collection's vectors in schema 9's rebuild order: by rowid.
    func vectorsInRowidOrder(_ definition: CollectionDefinition, keys: RegionKeys, in database: Database) throws -> [String] {
        let rows = try database.fetchAll("SELECT pid, sealed_vector FROM vectors WHERE collection = ? ORDER BY rowid",
                                         [definition.name.rawValue]) { ($0.text(0), $0.blob(1)) }
        return try rows.map { text, sealed in
            let pid = try PID(parsing: text)
            let key = try XCTUnwrap(try SubjectRecords.key(of: pid, keys: keys, in: database))
            return "\(text.suffix(6))=\(try VectorRecords.open(sealed, key: key, collection: definition.name, pid: pid))"
        }
    }

    /// The collection's vectors in the order the node rebuilds its index.
    func vectorsInRebuildOrder(_ definition: CollectionDefinition, keys: RegionKeys, in database: Database) throws -> [String] {
        var vectors: [String] = []
        try VectorRecords.forEachVector(in: definition, keys: keys, database: database) { pid, vector, _, _ in
            vectors.append("\(pid.rawValue.suffix(6))=\(vector)")
        }
        return vectors
    }

    func test_aSchema9Database_keepsItsVectors_andTheirRebuildOrder_underTheNewKey() throws {
        let keys = try makeKeys()
        let database = try databaseAtSchema9("vectors.sqlite")
        var random = SecureRandom()
        let subjects = try (0..<4).map { index -> PID in
            let identifier = Identifier(kind: .email, normalized: "subject\(index)@example.com")
            let pid = keys.pseudonymizers.current.pid(for: identifier)
            try SubjectRecords.insert(pid: pid, identifier: identifier, keys: keys, now: now, using: &random, in: database)
            return pid
        }
        let taste = try collection("taste", index: .flat)
        let faces = try collection("faces", index: .hnsw(HNSWSettings(m: 8, efConstruction: 32, ef: 16)))
        for definition in [taste, faces] { try defineAtSchema9(definition, in: database) }
        let writes: [(CollectionDefinition, Int, [Float])] = [
            (taste, 0, [1, 0]), (taste, 1, [0, 1]), (faces, 3, [3, 3]), (taste, 2, [2, 2]), (faces, 0, [4, 4]),
            (taste, 0, [5, 5]),  // a rewrite: to the end
            (taste, 3, [6, 6]),
        ]
        for (definition, subject, vector) in writes {
            try writeAtSchema9(vector, collection: definition.name, pid: subjects[subject], keys: keys, in: database)
        }
        let before = try [taste, faces].map { try vectorsInRowidOrder($0, keys: keys, in: database) }
        func suffix(_ subject: Int) -> Substring { subjects[subject].rawValue.suffix(6) }
        XCTAssertEqual(before[0], ["\(suffix(1))=[0.0, 1.0]", "\(suffix(2))=[2.0, 2.0]", "\(suffix(0))=[5.0, 5.0]", "\(suffix(3))=[6.0, 6.0]"])

        XCTAssertEqual(try NodeSchema.migrator.migrate(database, appliedAt: 1), Array(10...NodeSchema.migrator.migrations.count))

        XCTAssertEqual(try [taste, faces].map { try vectorsInRebuildOrder($0, keys: keys, in: database) }, before)
        XCTAssertEqual(try database.fetchAll("SELECT collection, written_seq FROM vectors ORDER BY collection, written_seq") {
            "\($0.text(0))#\($0.int64(1))"
        }, ["faces#1", "faces#2", "taste#1", "taste#2", "taste#3", "taste#4"])
        XCTAssertEqual(try database.tablesWithoutPrimaryKey(), [])

        // Written after the migration: a rewrite and a new vector go to the end, a delete leaves the rest in order.
        let key = try XCTUnwrap(try SubjectRecords.key(of: subjects[1], keys: keys, in: database))
        let grounds = ConsentGate.Grounds(basis: .legitimateInterest, receiptID: nil)
        try VectorRecords.write([7, 7], collection: taste.name, pid: subjects[1], key: key, grounds: grounds, now: now, using: &random,
                                in: database)
        XCTAssertTrue(try VectorRecords.delete(collection: taste.name, pid: subjects[2], now: Timestamp(milliseconds: 1), in: database))
        let key3 = try XCTUnwrap(try SubjectRecords.key(of: subjects[3], keys: keys, in: database))
        try VectorRecords.write([8, 8], collection: faces.name, pid: subjects[3], key: key3, grounds: grounds, now: now, using: &random,
                                in: database)
        XCTAssertEqual(try vectorsInRebuildOrder(taste, keys: keys, in: database),
                       ["\(suffix(0))=[5.0, 5.0]", "\(suffix(3))=[6.0, 6.0]", "\(suffix(1))=[7.0, 7.0]"])
        XCTAssertEqual(try vectorsInRebuildOrder(faces, keys: keys, in: database), ["\(suffix(0))=[4.0, 4.0]", "\(suffix(3))=[8.0, 8.0]"])
        XCTAssertEqual(try VectorRecords.vector(collection: taste.name, pid: subjects[1], key: key, in: database), [7, 7])
    }

    /// Schema 9's embedding charges, inserted in `order`.
    func chargesAtSchema9(_ name: String, order: [Int]) throws -> Database {
        let database = try databaseAtSchema9(name)
        let rows: [(pid: String, collection: String, period: String, epsilon: Double, delta: Double, chargedAt: Int64)] = [
            ("pid-a", "taste", "2027-01", 0.5, 1e-6, 200),
            ("pid-a", "taste", "2027-01", 0.5, 1e-6, 200),  // the same export twice in one millisecond
            ("pid-a", "faces", "2027-01", 0.25, 0, 100),
            ("pid-a", "taste", "2027-02", 0.5, 1e-6, 300),
            ("pid-b", "taste", "2027-01", 1.0, 0, 150),
        ]
        for index in order {
            let row = rows[index]
            try database.execute("""
                INSERT INTO embedding_charges (pid, collection, period, epsilon, delta, charged_at) VALUES (?, ?, ?, ?, ?, ?)
                """, [row.pid, row.collection, row.period, row.epsilon, row.delta, row.chargedAt])
        }
        return database
    }

    func test_aSchema9Database_numbersItsEmbeddingCharges_alikeOnEveryNodeHoldingThem() throws {
        let database = try chargesAtSchema9("charges.sqlite", order: [0, 1, 2, 3, 4])
        let other = try chargesAtSchema9("charges-other.sqlite", order: [4, 2, 1, 3, 0])
        func spend(_ database: Database) throws -> [String] {
            try database.fetchAll("SELECT pid, period, sum(epsilon), sum(delta), count(*) FROM embedding_charges GROUP BY pid, period ORDER BY 1, 2") {
                "\($0.text(0)) \($0.text(1)) \($0.double(2)) \($0.double(3)) \($0.int64(4))"
            }
        }
        let spent = try spend(database)

        for migrating in [database, other] { XCTAssertEqual(try NodeSchema.migrator.migrate(migrating, appliedAt: 1), Array(10...NodeSchema.migrator.migrations.count)) }

        XCTAssertEqual(try spend(database), spent)
        XCTAssertEqual(try database.fetchAll("SELECT pid, period, seq, collection, charged_at FROM embedding_charges ORDER BY pid, period, seq") {
            "\($0.text(0)) \($0.text(1)) #\($0.int64(2)) \($0.text(3)) \($0.int64(4))"
        }, ["pid-a 2027-01 #1 faces 100", "pid-a 2027-01 #2 taste 200", "pid-a 2027-01 #3 taste 200", "pid-a 2027-02 #1 taste 300",
            "pid-b 2027-01 #1 taste 150"])
        XCTAssertEqual(try other.contentDump().filter { $0.hasPrefix("embedding_charges|") },
                       try database.contentDump().filter { $0.hasPrefix("embedding_charges|") })
        XCTAssertEqual(try database.tablesWithoutPrimaryKey(), [])
    }
}
