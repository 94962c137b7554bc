@testable import DomicileNode
import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import DomicileTestSupport
import DomicileVectors
import Foundation
import XCTest

/// A domain operation is a function of its inputs: run the same operations
/// (register, grant, write features, upsert vectors, revoke, release an
/// aggregate, erase) twice, each time on a fresh database and a copy of the
/// same keyring, with the same seeded clock, ids and random source, and
/// every row, the erasure certificate and the audit head come out
/// byte-identical. Ciphertexts included: nonces and key material are drawn
/// from the injected source too.
final class DomainReplayTests: XCTestCase {
    struct Outcome: Equatable {
        var rows: [String: [String]] = [:]
        var certificate: [UInt8] = []
        var auditHead = ""
    }

    func test_domainOperations_replayedFromTheSameSeeds_leaveByteIdenticalState() async throws {
        let federation = try FederationFixture(regions: ["eu"])
        let first = try await run(federation, seed: 21, copy: "first")
        let second = try await run(federation, seed: 21, copy: "second")
        XCTAssertEqual(first.rows.keys.sorted(), second.rows.keys.sorted())
        for table in first.rows.keys.sorted() {
            XCTAssertEqual(first.rows[table], second.rows[table], "table \(table) differs between two runs of the same seed")
        }
        XCTAssertEqual(first.certificate, second.certificate, "the erasure certificates differ")
        XCTAssertEqual(first.auditHead, second.auditHead, "the audit heads differ")
        for table in ["subjects", "consent_receipts", "features", "vectors", "aggregate_releases", "erasure_requests", "audit_log"] {
            XCTAssertFalse(first.rows[table, default: []].isEmpty, "the run left no row in \(table): the comparison would prove nothing")
        }
        XCTAssertFalse(first.certificate.isEmpty)

        let otherSeed = try await run(federation, seed: 22, copy: "other")
        XCTAssertNotEqual(otherSeed.rows["aggregate_releases"], first.rows["aggregate_releases"], "the noise comes from the seed")
        XCTAssertNotEqual(otherSeed.rows["features"], first.rows["features"], "the nonces come from the seed")
    }

    /// One run on its own data directory and keyring copy.
    private func run(_ federation: FederationFixture, seed: UInt64, copy: String) async throws -> Outcome {
        var configuration = try NodeConfiguration.load(path: federation.configPath("eu-1"))
        configuration.gossip.address = nil
        configuration.accessLog = false
        configuration.dataDirectory = federation.directory.file("replay-\(copy)")
        let keyring = federation.directory.file("replay-\(copy).keyring")
        try FileManager.default.copyItem(atPath: configuration.keyringPath, toPath: keyring)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyring)
        configuration.keyringPath = keyring
        let clock = ManualClock(Timestamp(seconds: 1_800_000_000))
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let node = try await Node.start(configuration, clock: clock, ids: SeededIDGenerator(seed: seed), random: SeededRandomSource(seed: seed),
                                        logger: Logger(clock: clock, descriptor: devNull))
        do {
            let outcome = try await operations(node.services, clock: clock)
            await node.shutdown(graceMilliseconds: 0)
            return outcome
        } catch {
            await node.shutdown(graceMilliseconds: 0)
            throw error
        }
    }

    private func operations(_ services: NodeServices, clock: ManualClock) async throws -> Outcome {
        var step = 0
        func call(_ role: Role) -> CallContext {
            step += 1
            clock.advance(milliseconds: 1_000)
            return CallContext(principal: Principal(name: "replay-\(role.rawValue)", roles: [role]), now: clock.now(),
                               requestID: "replay-\(step)", services: services)
        }
        let analytics = try Purpose("analytics"), recs = try Purpose("product_recs")
        var pids: [PID] = []
        for index in 0..<4 {
            let identifier = try Identifier(kind: .customerID, raw: "replay-\(index)")
            pids.append(try await SubjectService.register(identifier, home: services.region, call: call(.ingest)).pid)
        }
        let collectedAt = clock.now().rfc3339
        for pid in pids {
            let fields = ConsentService.ReceiptFields(action: "grant", purposes: [analytics.rawValue, recs.rawValue], basis: nil, source: "replay",
                                                      collectedAt: collectedAt, expiresAt: nil)
            let grant = call(.ingest)
            _ = try await ConsentService.append(try ConsentService.parse(fields, field: "", limits: services.configuration.limits, now: grant.now),
                                                for: pid, call: grant)
        }
        let spend = try Name("spend", what: "feature"), behavioral = try Name("behavioral", what: "classification")
        _ = try await FeatureService.define(FeatureDefinition(name: spend, type: .number, purpose: analytics, ttlSeconds: 86_400,
                                                              classification: behavioral), call: call(.admin))
        let collection = CollectionDefinition(name: try Name("taste", what: "collection"), dimension: 4, metric: .cosine, purpose: recs,
                                              index: .hnsw(HNSWSettings()), export: nil)
        _ = try await VectorService.define(collection, call: call(.admin))
        let installed = try XCTUnwrap(services.vectors.collection(collection.name))
        for (index, pid) in pids.enumerated() {
            let value = Double(index) * 12.5 + 3
            _ = try await FeatureService.write([(spend, .number(value), "values.spend")], for: pid, call: call(.ingest))
            try await VectorService.write([Float(index), 1, 2, 3], for: pid, in: installed, call: call(.ingest))
        }
        let revoke = call(.ingest)
        _ = try await ConsentService.append(try ConsentService.parse(
            ConsentService.ReceiptFields(action: "revoke", purposes: [recs.rawValue], basis: nil, source: "replay", collectedAt: revoke.now.rfc3339,
                                         expiresAt: nil), field: "", limits: services.configuration.limits, now: revoke.now), for: pids[1], call: revoke)
        let query = AggregateService.Query(name: try Name("spend_sum", what: "aggregate"), kind: .sum, feature: spend, categories: [],
                                           clamp: 0...100, mechanism: .laplace, epsilon: 0.5, delta: 0, dataset: try Name("crm", what: "dataset"),
                                           purpose: analytics)
        _ = try await AggregateService.release(query, call: call(.analyst))
        let erasure = try await ErasureService.request(.pid(pids[2]), jurisdiction: nil, call: call(.privacyOfficer))

        var outcome = Outcome()
        let certificate = try XCTUnwrap(erasure.certificate, "a one-node erasure completes at once")
        outcome.certificate = Array(try ErasureRoutes.certificateEncoder.encode(certificate))
        try services.store.snapshot { database in
            let tables = try database.fetchAll("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") { $0.text(0) }
            for table in tables {
                let columns = try database.fetchAll("SELECT name FROM pragma_table_info(?)", [table]) { $0.text(0) }
                let quoted = columns.map { "quote(\"\($0)\")" }.joined(separator: " || ',' || ")
                outcome.rows[table] = try database.fetchAll("SELECT \(quoted) FROM \"\(table)\" ORDER BY 1") { $0.text(0) }
            }
            outcome.auditHead = try AuditLog.verify(database).head
        }
        return outcome
    }
}
