import DomicileTestSupport
import XCTest

/// The Jepsen checker on hand-made histories: clean ones pass, and each
/// broken property is caught (a checker that cannot fail proves nothing).
final class RegionCheckerTests: XCTestCase {
    static let schema = RegionSchema(featurePurposes: ["recs": "product_recs", "mail": "marketing_email"],
                                     collectionPurposes: ["items": "product_recs"],
                                     consentPurposes: ["product_recs", "marketing_email"])
    static let pid = "psn:v1:eu:AAAA"
    static let nodes = ["eu-1", "eu-2", "eu-3"]

    /// Builds histories with explicit times.
    struct Builder {
        var entries: [HistoryEntry] = []

        @discardableResult
        mutating func add(_ operation: RegionOperation, _ invoked: Double, _ completed: Double, _ completion: RegionCompletion,
                          node: String = "eu-1") -> HistoryEntry {
            let entry = HistoryEntry(id: entries.count, client: "c\(entries.count % 3)", node: node, operation: operation,
                                     invoked: invoked, completed: completed, completion: completion)
            entries.append(entry)
            return entry
        }

        /// Registers the subject and grants product_recs, both acknowledged, by t = 2.
        mutating func registeredAndGranted() {
            add(.register(identifier: "a@x.eu"), 0, 1, .ok(.pid(pid)))
            add(.grant(pid: pid, purpose: "product_recs"), 1, 2, .ok(.receipt("r1")))
        }
    }

    /// Every node shows `subject` and the same audit chain.
    func finals(_ subject: SubjectState, audit: [String] = ["h1", "h2"]) -> [String: NodeState] {
        Dictionary(uniqueKeysWithValues: Self.nodes.map {
            ($0, NodeState(pids: ["a@x.eu": Self.pid], subjects: [Self.pid: subject], auditHashes: audit))
        })
    }

    func check(_ builder: Builder, _ finals: [String: NodeState], partitions: [PartitionWindow] = []) -> [Violation] {
        RegionChecker(schema: Self.schema, entries: builder.entries, partitions: partitions, finals: finals).check()
    }

    func assertOnly(_ violations: [Violation], _ kind: Violation.Kind, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(violations.isEmpty, "expected a \(kind.rawValue) violation", file: file, line: line)
        XCTAssertEqual(Set(violations.map(\.kind)), [kind], "\(violations)", file: file, line: line)
    }

    // MARK: - Clean histories pass

    func test_aCleanHistory_hasNoViolation() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 7), 3, 4, .ok(.none), node: "eu-2")
        history.add(.upsertVector(pid: Self.pid, collection: "items", id: 11), 3, 4, .ok(.none), node: "eu-3")
        history.add(.readFeatures(pid: Self.pid, purpose: "product_recs"), 5, 6, .ok(.features(["recs": 7])), node: "eu-3")
        history.add(.search(collection: "items", purpose: "product_recs"), 5, 6, .ok(.hits([Self.pid: 11])), node: "eu-1")
        history.add(.readConsent(pid: Self.pid), 5, 6, .ok(.purposes(["product_recs"])), node: "eu-2")
        // A write refused for lack of consent, and one whose fate is unknown and may never have happened.
        history.add(.writeFeature(pid: Self.pid, feature: "mail", value: 8), 6, 7, .fail(status: 403, code: "consent_required"))
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 9), 7, 8, .info("timed out"))
        let subject = SubjectState(receipts: ["r1"], active: ["product_recs"], features: ["recs": 7], vectors: ["items": 11])
        XCTAssertEqual(check(history, finals(subject)), [])
        // The indeterminate write may also have happened.
        var later = subject
        later.features["recs"] = 9
        XCTAssertEqual(check(history, finals(later)), [])
    }

    func test_dataReadAfterARevocation_isFine_whenAGrantAndAWriteMayHaveComeBetween() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.revoke(pid: Self.pid, purpose: "product_recs"), 3, 4, .ok(.receipt("r2")))
        history.add(.grant(pid: Self.pid, purpose: "product_recs"), 5, 6, .info("connection reset"))
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 12), 7, 8, .ok(.none))
        history.add(.readFeatures(pid: Self.pid, purpose: "product_recs"), 9, 10, .ok(.features(["recs": 12])), node: "eu-2")
        let subject = SubjectState(receipts: ["r1", "r2", "r3"], active: ["product_recs"], features: ["recs": 12])
        XCTAssertEqual(check(history, finals(subject)), [])
    }

    func test_aCutOffNodeThatRefusesWithNoQuorum_passes() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.readConsent(pid: Self.pid), 14, 15, .fail(status: 503, code: "no_quorum"), node: "eu-3")
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 3), 15, 19, .info("timed out"), node: "eu-3")
        // Answered once healed: not the minority's answer.
        history.add(.readConsent(pid: Self.pid), 19, 21, .ok(.purposes(["product_recs"])), node: "eu-3")
        let window = PartitionWindow(node: "eu-3", start: 10, end: 20)
        XCTAssertEqual(check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"])), partitions: [window]), [])
    }

    // MARK: - Broken histories fail

    func test_anAcknowledgedFeatureWriteMissingAtTheEnd_isALostWrite() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 7), 3, 4, .ok(.none))
        assertOnly(check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))), .lostWrite)
    }

    func test_anOverwrittenValueComingBack_isALostWrite() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 7), 3, 4, .ok(.none))
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 8), 5, 6, .ok(.none))
        assertOnly(check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"], features: ["recs": 7]))), .lostWrite)
    }

    func test_anAcknowledgedVectorMissingOnOneNode_isALostWriteAndADivergence() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.upsertVector(pid: Self.pid, collection: "items", id: 11), 3, 4, .ok(.none))
        var states = finals(SubjectState(receipts: ["r1"], active: ["product_recs"], vectors: ["items": 11]))
        states["eu-2"]!.subjects[Self.pid]!.vectors = [:]
        let violations = check(history, states)
        XCTAssertEqual(Set(violations.map(\.kind)), [.lostWrite, .divergence], "\(violations)")
        XCTAssertTrue(violations.contains { $0.kind == .lostWrite && $0.detail.hasPrefix("eu-2") }, "\(violations)")
    }

    func test_aLostReceiptAndALostRegistration_areLostWrites() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.revoke(pid: Self.pid, purpose: "marketing_email"), 3, 4, .ok(.receipt("r2")))
        assertOnly(check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))), .lostWrite)
        var unknown = finals(SubjectState(receipts: ["r1", "r2"], active: ["product_recs"]))
        for node in Self.nodes { unknown[node] = NodeState(auditHashes: ["h1"]) }
        assertOnly(check(history, unknown), .lostWrite)
    }

    func test_anAcknowledgedRevocationUndoneAtTheEnd_isALostWrite() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.revoke(pid: Self.pid, purpose: "product_recs"), 3, 4, .ok(.receipt("r2")))
        assertOnly(check(history, finals(SubjectState(receipts: ["r1", "r2"], active: ["product_recs"]))), .lostWrite)
    }

    func test_aFeatureReadAfterAnAcknowledgedRevocation_isCaught_onAnyNode() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 7), 3, 4, .ok(.none))
        history.add(.revoke(pid: Self.pid, purpose: "product_recs"), 5, 6, .ok(.receipt("r2")), node: "eu-1")
        history.add(.readFeatures(pid: Self.pid, purpose: "product_recs"), 6.5, 7, .ok(.features(["recs": 7])), node: "eu-3")
        assertOnly(check(history, finals(SubjectState(receipts: ["r1", "r2"]))), .servedAfterRevocation)
    }

    func test_aSearchHitAfterAnAcknowledgedRevocation_isCaught() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.upsertVector(pid: Self.pid, collection: "items", id: 11), 3, 4, .ok(.none))
        history.add(.revoke(pid: Self.pid, purpose: "product_recs"), 5, 6, .ok(.receipt("r2")))
        history.add(.search(collection: "items", purpose: "product_recs"), 7, 8, .ok(.hits([Self.pid: 11])), node: "eu-2")
        assertOnly(check(history, finals(SubjectState(receipts: ["r1", "r2"]))), .servedAfterRevocation)
    }

    func test_aReadConcurrentWithTheRevocation_mayStillSeeTheData() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.writeFeature(pid: Self.pid, feature: "recs", value: 7), 3, 4, .ok(.none))
        history.add(.revoke(pid: Self.pid, purpose: "product_recs"), 5, 6, .ok(.receipt("r2")))
        history.add(.readFeatures(pid: Self.pid, purpose: "product_recs"), 5.5, 7, .ok(.features(["recs": 7])), node: "eu-2")
        XCTAssertEqual(check(history, finals(SubjectState(receipts: ["r1", "r2"]))), [])
    }

    func test_revokedConsentStillShownActive_orAGrantMissing_isCaught() {
        var revoked = Builder()
        revoked.registeredAndGranted()
        revoked.add(.revoke(pid: Self.pid, purpose: "product_recs"), 3, 4, .ok(.receipt("r2")))
        revoked.add(.readConsent(pid: Self.pid), 5, 6, .ok(.purposes(["product_recs"])), node: "eu-2")
        assertOnly(check(revoked, finals(SubjectState(receipts: ["r1", "r2"]))), .servedAfterRevocation)

        var granted = Builder()
        granted.registeredAndGranted()
        granted.add(.readConsent(pid: Self.pid), 3, 4, .ok(.purposes([])), node: "eu-3")
        assertOnly(check(granted, finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))), .staleRead)
    }

    func test_aValueFromARefusedWrite_isAPhantom() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.writeFeature(pid: Self.pid, feature: "mail", value: 8), 3, 4, .fail(status: 403, code: "consent_required"))
        history.add(.readFeatures(pid: Self.pid, purpose: "marketing_email"), 5, 6, .ok(.features(["mail": 8])))
        assertOnly(check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))), .phantom)
    }

    func test_nodesEndingWithDifferentReceiptsOrAuditChains_diverge() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.grant(pid: Self.pid, purpose: "marketing_email"), 3, 4, .info("timed out"))
        var states = finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))
        states["eu-3"]!.subjects[Self.pid] = SubjectState(receipts: ["r1", "r2"], active: ["product_recs", "marketing_email"])
        assertOnly(check(history, states), .divergence)

        var heads = finals(SubjectState(receipts: ["r1"], chainHead: "a1", active: ["product_recs"]))
        heads["eu-1"]!.subjects[Self.pid]!.chainHead = "b1"
        assertOnly(check(history, heads), .divergence)

        var audits = finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))
        audits["eu-2"]!.auditHashes = ["h1", "hX", "h3"]
        assertOnly(check(history, audits), .divergence)
        // A longer chain with the same prefix is fine: reading the log is audited.
        audits["eu-2"]!.auditHashes = ["h1", "h2", "h3"]
        XCTAssertEqual(check(history, audits), [])
    }

    func test_aNoQuorumRefusalWithoutRetryAfter_isCaught() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.readConsent(pid: Self.pid), 3, 4, .fail(status: 503, code: RegionCompletion.noQuorumWithoutRetryAfter))
        assertOnly(check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))), .refusalWithoutRetryAfter)
    }

    func test_oneIdentifierRegisteredTwice_isASplitRegistration() {
        var history = Builder()
        history.registeredAndGranted()
        history.add(.register(identifier: "a@x.eu"), 3, 4, .ok(.pid("psn:v1:eu:BBBB")), node: "eu-3")
        XCTAssertTrue(check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"]))).contains { $0.kind == .splitRegistration })
    }

    func test_aCutOffNodeThatAnswers_orNeverSaysNoQuorum_isCaught() {
        var history = Builder()
        history.registeredAndGranted()
        // Inside the grace: tolerated.
        history.add(.readConsent(pid: Self.pid), 10.5, 11, .ok(.purposes(["product_recs"])), node: "eu-3")
        history.add(.readConsent(pid: Self.pid), 14, 15, .ok(.purposes(["product_recs"])), node: "eu-3")
        let window = PartitionWindow(node: "eu-3", start: 10, end: 20)
        let violations = check(history, finals(SubjectState(receipts: ["r1"], active: ["product_recs"])), partitions: [window])
        XCTAssertEqual(violations.map(\.kind), [.minorityServed, .noQuorumMissing], "\(violations)")
        XCTAssertTrue(violations[0].detail.contains("#3"), "\(violations)")
        // Asking nothing of the cut-off node shows nothing either.
        var silent = Builder()
        silent.registeredAndGranted()
        assertOnly(check(silent, finals(SubjectState(receipts: ["r1"], active: ["product_recs"])), partitions: [window]), .noQuorumMissing)
    }
}
