import DomicileClient
import DomicileTestSupport
import Foundation
import XCTest

/// One flow per API area, through `DomicileClient`, against a real node.
final class ClientEndToEndTests: ClientTestCase {
    func test_subjectsAndConsent_registerLookupReadGrantAndGPC() async throws {
        try startNode()
        let ingest = try client("ingest")
        let serve = ingest.withToken(federation.token("serve"))

        let registered = try await ingest.register(.email("Ada@Example.com"), home: .country("DE"))
        XCTAssertTrue(registered.created)
        XCTAssertEqual(registered.region, "eu")
        let again = try await ingest.register(.email("ada@example.com"), home: .region("eu"))
        XCTAssertEqual(again.pid, registered.pid)
        XCTAssertFalse(again.created, "registering twice finds the first")
        let found = try await serve.lookup(.email(" ADA@example.com"))
        XCTAssertEqual(found, registered.pid)

        let granted = try await ingest.appendConsent(.grant(["product_recs", "analytics"], source: "test:client", collectedAt: Self.collectedAt),
                                                     for: registered.pid)
        XCTAssertEqual(granted.pid, registered.pid)
        XCTAssertEqual(granted.action, "grant")
        let purposes = try await serve.consent(of: registered.pid).purposes.sorted()
        XCTAssertEqual(purposes, ["analytics", "product_recs"])
        let subjectPurposes = try await serve.subject(registered.pid).activePurposes.sorted()
        XCTAssertEqual(subjectPurposes, ["analytics", "product_recs"])

        // Global Privacy Control revokes the purposes the policy marks gpc (product_recs), not analytics.
        _ = try await ingest.appendConsent(.gpc(source: "test:client", collectedAt: "2026-01-02T00:00:00Z"), for: registered.pid)
        let afterGPC = try await serve.consent(of: registered.pid).purposes
        XCTAssertEqual(afterGPC, ["analytics"])
        let history = try await ingest.withToken(federation.token("privacy_officer")).consentHistory(of: registered.pid)
        XCTAssertTrue(history.chainValid)
        XCTAssertEqual(history.receipts.map(\.action), ["grant", "gpc"])
        XCTAssertEqual(history.receipts.last?.prevHash, history.receipts.first?.hash)

        let batch = try await ingest.appendConsents([(registered.pid, .revoke(["analytics"], source: "test:client",
                                                                               collectedAt: "2026-01-03T00:00:00Z"))])
        XCTAssertEqual(batch.count, 1)
        let afterBatch = try await serve.consent(of: registered.pid).purposes
        XCTAssertEqual(afterBatch, [])

        let unknown = await problem { _ = try await serve.lookup(.email("nobody@example.com")) }
        XCTAssertEqual(unknown?.code, .unknownSubject)
        XCTAssertEqual(unknown?.status, 404)
    }

    func test_featuresAndEventContracts_writeServeWithholdAndMinimize() async throws {
        try startNode()
        let admin = try client("admin")
        let ingest = admin.withToken(federation.token("ingest"))
        let serve = admin.withToken(federation.token("serve"))

        try await admin.defineFeature(FeatureDefinition(name: "visits", type: .number, purpose: "product_recs", ttlSeconds: 3_600))
        try await admin.defineFeature(FeatureDefinition(name: "last_category", type: .string, purpose: "product_recs", ttlSeconds: 3_600))
        let definitions = try await admin.featureDefinitions()
        XCTAssertEqual(Set(definitions.map(\.name)), ["visits", "last_category"])

        let pid = try await ingest.register(.customerID("c-42"), home: .region("eu")).pid
        let refused = await problem { try await ingest.writeFeatures(["visits": 3], for: pid) }
        XCTAssertEqual(refused?.code, .consentRequired)
        XCTAssertEqual(refused?.status, 403)

        _ = try await ingest.appendConsent(.grant(["product_recs"], source: "test:client", collectedAt: Self.collectedAt), for: pid)
        let written = try await ingest.writeFeatures(["visits": 3, "last_category": "boots"], for: pid)
        XCTAssertEqual(Set(written.written), ["visits", "last_category"])
        let served = try await serve.features(of: pid, purpose: "product_recs")
        XCTAssertEqual(served.features, ["visits": .number(3), "last_category": .string("boots")])
        XCTAssertEqual(served.withheld, [])

        let contract = EventContract(fields: ["category": .init(type: "string", feature: "last_category"),
                                              "ip": .init(type: "string", transform: "drop")])
        let stored = try await admin.defineContract("page_view", contract)
        XCTAssertEqual(stored.fields["category"]?.feature, "last_category")
        let contractNames = try await admin.contracts().map(\.name)
        XCTAssertEqual(contractNames, ["page_view"])
        let updated = try await ingest.sendEvent("page_view", pid: pid, fields: ["category": .string("sandals"), "ip": .string("10.1.2.3")])
        XCTAssertEqual(updated, ["last_category"])
        let minimized = try await serve.features(of: pid, purpose: "product_recs").features["last_category"]
        XCTAssertEqual(minimized, .string("sandals"))

        let unknownField = await problem {
            _ = try await ingest.sendEvent("page_view", pid: pid, fields: ["category": .string("hats"), "referrer": .string("x")])
        }
        XCTAssertEqual(unknownField?.code, .unknownField)
        XCTAssertEqual(unknownField?.fields, ["referrer"])
        let missingPurpose = await problem { _ = try await serve.features(of: pid, purpose: "") }
        XCTAssertEqual(missingPurpose?.code, .purposeRequired)
    }

    func test_vectorsAndSearch_localAndFederatedScope_consentFiltered() async throws {
        try startNode()
        let admin = try client("admin")
        let ingest = admin.withToken(federation.token("ingest"))
        let serve = admin.withToken(federation.token("serve"))
        let collection = try await admin.defineCollection("taste", CollectionDefinition(dimension: 3, metric: .cosine, purpose: "product_recs",
                                                                                         index: .flat))
        XCTAssertEqual(collection.dimension, 3)
        XCTAssertEqual(collection.index?.kind, "flat")

        var pids: [String] = []
        for (index, vector) in [[1.0, 0, 0], [0.9, 0.1, 0], [0, 0, 1]].enumerated() {
            let pid = try await ingest.register(.email("v\(index)@example.com"), home: .region("eu")).pid
            _ = try await ingest.appendConsent(.grant(["product_recs"], source: "test:client", collectedAt: Self.collectedAt), for: pid)
            try await ingest.putVector(vector, for: pid, in: "taste")
            pids.append(pid)
        }
        let local = try await serve.search("taste", SearchRequest(vector: [1, 0, 0], k: 2, purpose: "product_recs"))
        XCTAssertEqual(local.pids, [pids[0], pids[1]])
        XCTAssertEqual(local.results.first?.region, "eu")
        XCTAssertNotNil(local.regions?["eu"], "the region's report")

        let byExample = try await serve.search("taste", SearchRequest(pid: pids[0], k: 1, purpose: "product_recs", scope: .federated))
        XCTAssertEqual(byExample.pids, [pids[1]], "the example's nearest other subject")
        XCTAssertNotNil(byExample.partial)

        try await ingest.deleteVector(for: pids[0], in: "taste")
        _ = try await ingest.appendConsent(.revoke(["product_recs"], source: "test:client", collectedAt: "2026-01-02T00:00:00Z"), for: pids[1])
        let remaining = try await serve.search("taste", SearchRequest(vector: [1, 0, 0], k: 3, purpose: "product_recs")).pids
        XCTAssertEqual(remaining, [pids[2]],
                       "a deleted vector and a revoked subject are gone")

        let invalid = await problem { try await ingest.putVector([1, 2], for: pids[2], in: "taste") }
        XCTAssertEqual(invalid?.code, .invalidVector)
        let tooMany = await problem { _ = try await serve.search("taste", SearchRequest(vector: [1, 0, 0], k: 100_000, purpose: "product_recs")) }
        XCTAssertEqual(tooMany?.code, .kTooLarge)
        let mismatch = await problem { _ = try await serve.search("taste", SearchRequest(vector: [1, 0, 0], purpose: "analytics")) }
        XCTAssertEqual(mismatch?.code, .purposeMismatch)
    }

    func test_aggregatesAndBudget_releaseReadGlobalCSVChargeAndExhaust() async throws {
        try startNode { _, config in
            var limits = config["limits"] as? [String: Any] ?? [:]
            limits["privacy_epsilon_per_period"] = 100.0
            config["limits"] = limits
        }
        let ingest = try client("ingest")
        let analyst = ingest.withToken(federation.token("analyst"))
        for index in 0..<3 {
            let pid = try await ingest.register(.email("a\(index)@example.com"), home: .region("eu")).pid
            _ = try await ingest.appendConsent(.grant(["analytics"], source: "test:client", collectedAt: Self.collectedAt), for: pid)
        }
        // ε = 60: the discrete Laplace is 0 with probability 1 − 2e⁻⁶⁰/(1+e⁻⁶⁰), so the count is exact.
        let release = try await analyst.releaseAggregate(AggregateRequest(name: "subjects", kind: .count, epsilon: 60))
        XCTAssertEqual(release.value, 3)
        XCTAssertEqual(release.region, "eu")
        XCTAssertEqual(release.budgetRemaining?.epsilon ?? 0, 40, accuracy: 1e-9)
        let latest = try await analyst.aggregate("subjects").releaseID
        XCTAssertEqual(latest, release.releaseID)

        let global = try await analyst.globalAggregate("subjects")
        XCTAssertEqual(global.value, 3)
        XCTAssertEqual(global.regions["eu"]?.releaseID, release.releaseID)
        XCTAssertEqual(global.missingRegions, ["br", "us"], "the policy's other regions, which have released nothing")
        XCTAssertEqual(global.interval.level, 0.95)
        let csv = try await analyst.aggregateCSV("subjects", global: true)
        XCTAssertTrue(csv.hasPrefix("scope,region,release_id,"), csv)

        let charge = try await analyst.chargeBudget(BudgetChargeRequest(dataset: "crm", sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100,
                                                                        delta: 1e-5, description: "dp-sgd"))
        XCTAssertEqual(charge.accountant, "rdp")
        XCTAssertGreaterThan(charge.epsilon, 0)
        let budget = try await analyst.privacyBudget()
        XCTAssertEqual(budget.limits.epsilon, 100)
        XCTAssertEqual(budget.spent.epsilon, 60 + charge.epsilon, accuracy: 1e-9)
        XCTAssertEqual(budget.datasets.map(\.dataset), ["crm"])

        let exhausted = await problem { _ = try await analyst.releaseAggregate(AggregateRequest(name: "again", kind: .count, epsilon: 50)) }
        XCTAssertEqual(exhausted?.code, .budgetExhausted)
        XCTAssertEqual(exhausted?.epsilonRemaining ?? 0, 40 - charge.epsilon, accuracy: 1e-9)
    }

    func test_erasureAndAudit_certificateAndVerifiedChain() async throws {
        try startNode()
        let ingest = try client("ingest")
        let officer = ingest.withToken(federation.token("privacy_officer"))
        let pid = try await ingest.register(.email("erase.me@example.com"), home: .country("DE")).pid
        _ = try await ingest.appendConsent(.grant(["product_recs"], source: "test:client", collectedAt: Self.collectedAt), for: pid)

        let requested = try await officer.requestErasure(identifier: .email("ERASE.me@example.com"), jurisdiction: "gdpr")
        XCTAssertEqual(requested.regions["eu"], "erased")
        var status = requested
        let complete = try await eventually(seconds: 20) {
            status = try await officer.erasure(requested.erasureID)
            return status.isComplete
        }
        XCTAssertTrue(complete, "\(status)")
        let certificate = try XCTUnwrap(status.certificate)
        XCTAssertEqual(certificate.erasureID, requested.erasureID)
        XCTAssertEqual(certificate.expectedRegions, ["eu"])
        XCTAssertEqual(certificate.acks.map(\.region), ["eu"])
        guard case .object(let document) = certificate.document else { return XCTFail("the certificate as sent") }
        XCTAssertEqual(document["erasure_id"], .string(requested.erasureID))
        let completed = try await officer.erasures(status: "complete").map(\.erasureID)
        XCTAssertEqual(completed, [requested.erasureID])
        let gone = await problem { _ = try await ingest.lookup(.email("erase.me@example.com")) }
        XCTAssertEqual(gone?.code, .unknownSubject)
        let unknown = await problem { _ = try await officer.erasure("er_missing") }
        XCTAssertEqual(unknown?.code, .unknownErasure)

        let page = try await officer.audit(after: 0, limit: 1_000)
        XCTAssertFalse(page.events.isEmpty)
        XCTAssertTrue(page.events.contains { $0.pid == pid }, "the subject's events, by pid")
        let verification = try await officer.verifyAudit()
        XCTAssertTrue(verification.valid)
        XCTAssertEqual(verification.length, page.events.last?.seq)
    }

    func test_reidentification_twoOtherOfficersApprove_thenTheIdentifiersAreReleasedOnce() async throws {
        try startNode()
        let pid = try await client("ingest").register(.email("who@example.com"), home: .region("eu")).pid
        let requester = try client("privacy_officer")
        let created = try await requester.requestReidentification(pid: pid, reason: "fraud case", ticket: "SEC-9")
        XCTAssertEqual(created.status, "pending_approval")
        let selfApproval = await problem { _ = try await requester.approveReidentification(created.id) }
        XCTAssertEqual(selfApproval?.code, .selfApproval)
        let second = requester.withToken(federation.token("privacy_officer_2"))
        _ = try await second.approveReidentification(created.id)
        let twice = await problem { _ = try await second.approveReidentification(created.id) }
        XCTAssertEqual(twice?.code, .alreadyApproved)
        _ = try await requester.withToken(federation.token("privacy_officer_3")).approveReidentification(created.id)

        let released = try await requester.reidentification(created.id)
        XCTAssertEqual(released.status, "approved")
        XCTAssertEqual(released.identifiers, [.email("who@example.com")])
        let after = try await requester.reidentification(created.id)
        XCTAssertEqual(after.status, "fulfilled")
        XCTAssertNil(after.identifiers, "released once")
    }

    func test_clusterAndSystem_healthReadinessViewAndPolicy() async throws {
        try startNode()
        let admin = try client("admin")
        let healthy = try await admin.isHealthy()
        XCTAssertTrue(healthy)
        let ready = try await admin.readiness().isReady
        XCTAssertTrue(ready)
        let view = try await admin.cluster()
        XCTAssertEqual(view.node.name, "eu-1")
        XCTAssertEqual(view.region, "eu")
        guard case .object(let policy) = try await admin.policy() else { return XCTFail("the policy is a JSON object") }
        XCTAssertNotNil(policy["purposes"])
    }
}
