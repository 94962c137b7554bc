@testable import DomicileFederation
import DomicileModel
import DomicilePrivacy
import XCTest

/// The anti-entropy machine, region against region, every message through the codec.
final class FederationNodeTests: XCTestCase {
    private let eu = Fixtures.eu, us = Fixtures.us, br = Fixtures.br

    func test_publish_numbersOwnRecordsAndAsksToPersistAndApplyThem() throws {
        var node = try Fixtures.node(eu)
        let first = try node.publish(.aggregate(Fixtures.release(1, in: eu)))
        let second = try node.publish(.erasureIntent(Fixtures.intent(1, from: eu, expecting: [eu, us])))
        XCTAssertEqual([first.seq, second.seq], [1, 2])
        let ready = node.ready()
        XCTAssertEqual(ready.persist, [first, second])
        XCTAssertEqual(ready.apply, [first, second])
        XCTAssertTrue(ready.messages.isEmpty)
        XCTAssertFalse(node.hasReady)
        XCTAssertEqual(node.vector, VersionVector([eu: 2]))
    }

    func test_publish_refusesAnotherRegionsRecordAndOneOverTheBound() throws {
        var node = try Fixtures.node(eu)
        XCTAssertThrowsError(try node.publish(.aggregate(Fixtures.release(1, in: us)))) { XCTAssertEqual($0 as? FederationError, .notOurs) }
        // 1,000 categories of ~13 bytes: over the testing bound of 4 KiB.
        XCTAssertThrowsError(try node.publish(.aggregate(Fixtures.release(2, in: eu, categories: 1_000)))) {
            guard case .recordTooLarge = $0 as? FederationError else { return XCTFail("\($0)") }
        }
        XCTAssertFalse(node.hasReady, "a refused record changes nothing")
        XCTAssertEqual(node.vector, VersionVector())
    }

    func test_exchange_bringsBothRegionsToTheSameVector_pushAndPull() throws {
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us)])
        try federation[eu].publish(.aggregate(Fixtures.release(1, in: eu)))
        try federation[us].publish(.aggregate(Fixtures.release(2, in: us)))
        try federation.drain(eu)
        try federation.drain(us)
        try federation.exchange(eu, us)
        XCTAssertEqual(federation[eu].vector, VersionVector([eu: 1, us: 1]))
        XCTAssertEqual(federation[us].vector, federation[eu].vector)
        XCTAssertEqual(Set(federation[us].releases.keys), [Fixtures.id(.release, 1), Fixtures.id(.release, 2)])
        XCTAssertEqual(federation.readies[us]!.flatMap(\.apply).filter { $0.origin == eu }.compactMap(\.body.record),
                       [.aggregate(Fixtures.release(1, in: eu))])
    }

    func test_exchange_isBoundedAndResumesFromTheNewVector() throws {
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us)])
        for number in 1...20 { try federation[eu].publish(.aggregate(Fixtures.release(number, in: eu, categories: number % 2 == 0 ? 250 : 0))) }
        try federation.drain(eu)
        try federation.exchange(us, eu)
        XCTAssertEqual(federation[us].vector, VersionVector([eu: 20]))
        let deltas = federation.readies[eu]!.flatMap(\.messages).compactMap { envelope -> (Int, Int, Bool)? in
            guard case .deltas(let entries, _, let more) = envelope.message else { return nil }
            return (entries.count, try! FederationCodec.encode(envelope).count, more)
        }
        let settings = FederationSettings.testing
        XCTAssertGreaterThan(deltas.count, 2, "20 records, 10 of them 3 KiB, in exchanges of at most 12 KiB")
        XCTAssertTrue(deltas.allSatisfy { $0.0 <= settings.exchangeEntriesMax && $0.1 <= settings.exchangeBytesMax })
        XCTAssertTrue(deltas.contains { $0.0 < settings.exchangeEntriesMax && $0.2 }, "a message stopped at the byte bound")
        XCTAssertEqual(federation[us].releases.count, 20)
    }

    func test_deniedRecord_travelsAsAPlaceholder_andDoesNotBlockLaterRecords() throws {
        let transfer = Fixtures.denyingAggregates(from: eu, to: us)
        var federation = Federation([try Fixtures.node(eu, transfer: transfer), try Fixtures.node(us, transfer: transfer)])
        let intent = Fixtures.intent(1, from: eu, expecting: [eu, us])
        try federation[eu].publish(.aggregate(Fixtures.release(1, in: eu)))
        try federation[eu].publish(.erasureIntent(intent))
        try federation.drain(eu)
        try federation.exchange(us, eu)
        XCTAssertEqual(federation[us].vector, VersionVector([eu: 2]))
        XCTAssertEqual(federation[us].entries(from: eu).map(\.body), [.skipped(.aggregate), .record(.erasureIntent(intent))])
        XCTAssertTrue(federation[us].releases.isEmpty)
        let held = federation.readies[us]!.flatMap(\.persist) + federation.readies[us]!.flatMap(\.apply)
        XCTAssertFalse(held.contains { $0.body.kind == .aggregate && $0.body.record != nil }, "us never holds the release")
        XCTAssertEqual(federation[us].intentsAwaitingAck, [intent])
    }

    func test_placeholder_isNotRelayedToARegionThatMayHoldTheRecord() throws {
        let transfer = Fixtures.denyingAggregates(from: eu, to: us)
        var federation = Federation([try Fixtures.node(eu, transfer: transfer), try Fixtures.node(us, transfer: transfer),
                                     try Fixtures.node(br, transfer: transfer)])
        try federation[eu].publish(.aggregate(Fixtures.release(1, in: eu)))
        try federation[eu].publish(.aggregate(Fixtures.release(2, in: eu)))
        try federation.drain(eu)
        try federation.exchange(us, eu)
        try federation.exchange(br, us)
        XCTAssertEqual(federation[br].vector[eu], 0, "us cannot give br what it holds only as a placeholder")
        try federation.exchange(br, eu)
        XCTAssertEqual(federation[br].vector[eu], 2)
        XCTAssertEqual(federation[br].releases.count, 2)
    }

    func test_receiver_keepsARecordThePolicyDeniesItAsAPlaceholder() throws {
        // eu's policy lets the release go; us's policy does not let us hold it.
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us, transfer: Fixtures.denyingAggregates(from: eu, to: us))])
        try federation[eu].publish(.aggregate(Fixtures.release(1, in: eu)))
        try federation.drain(eu)
        try federation.exchange(eu, us)
        XCTAssertEqual(federation[us].entries(from: eu).map(\.body), [.skipped(.aggregate)])
        XCTAssertTrue(federation.readies[us]!.flatMap(\.apply).isEmpty)
    }

    func test_duplicatesAndOldMessages_changeNothing_aConflictIsCounted() throws {
        var us = try Fixtures.node(us)
        let entry = FederationEntry(origin: eu, seq: 1, body: .record(.aggregate(Fixtures.release(1, in: eu))))
        let deltas = FederationEnvelope(from: eu, to: self.us, message: .deltas(entries: [entry], digest: nil, more: false))
        us.step(deltas)
        XCTAssertEqual(us.ready().persist, [entry])
        us.step(deltas)
        XCTAssertFalse(us.hasReady)
        // Beyond a gap: dropped, it comes again in order.
        let beyond = FederationEntry(origin: eu, seq: 3, body: .record(.aggregate(Fixtures.release(3, in: eu))))
        us.step(FederationEnvelope(from: eu, to: self.us, message: .deltas(entries: [beyond], digest: nil, more: false)))
        XCTAssertFalse(us.hasReady)
        XCTAssertEqual(us.vector, VersionVector([eu: 1]))
        let other = FederationEntry(origin: eu, seq: 1, body: .record(.aggregate(Fixtures.release(9, in: eu))))
        us.step(FederationEnvelope(from: br, to: self.us, message: .deltas(entries: [other], digest: nil, more: false)))
        XCTAssertEqual(us.conflicts, 1)
        XCTAssertEqual(Array(us.releases.keys), [Fixtures.id(.release, 1)])
    }

    func test_receiver_refusesARecordThatIsNotItsOrigins() throws {
        var us = try Fixtures.node(us)
        let forged = FederationEntry(origin: br, seq: 1, body: .record(.aggregate(Fixtures.release(1, in: eu))))
        us.step(FederationEnvelope(from: br, to: self.us, message: .deltas(entries: [forged], digest: nil, more: false)))
        XCTAssertEqual(us.refused, 1)
        XCTAssertEqual(us.vector, VersionVector())
    }

    func test_restart_restoresFromThePersistedEntries() throws {
        var federation = Federation([try Fixtures.node(eu, transfer: Fixtures.denyingAggregates(from: eu, to: us)), try Fixtures.node(us)])
        try federation[eu].publish(.aggregate(Fixtures.release(1, in: eu)))
        try federation[eu].publish(.aggregate(Fixtures.release(2, in: eu)))
        try federation[us].publish(.aggregate(Fixtures.release(3, in: us)))
        try federation.drain(eu)
        try federation.drain(us)
        try federation.exchange(us, eu)
        let persisted = federation.readies[us]!.flatMap(\.persist)
        let restored = try Fixtures.node(us, restoring: persisted)
        XCTAssertEqual(restored.vector, federation[us].vector)
        XCTAssertEqual(restored.entries(from: eu), federation[us].entries(from: eu))
        XCTAssertThrowsError(try Fixtures.node(us, restoring: Array(persisted.reversed()))) {
            guard case .corruptState = $0 as? FederationError else { return XCTFail("\($0)") }
        }
    }

    func test_erasure_awaitsThisRegionsAck_andCompletesOnlyWithEveryExpectedRegion() throws {
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us), try Fixtures.node(br)])
        let intent = Fixtures.intent(1, from: eu, expecting: [eu, us])
        try federation[eu].publish(.erasureIntent(intent))
        try federation.drain(eu)
        XCTAssertEqual(federation[eu].intentsAwaitingAck, [intent])
        try federation[eu].publish(.erasureAck(Fixtures.ack(of: intent, by: eu)))
        XCTAssertEqual(federation[eu].intentsAwaitingAck, [])
        try federation.drain(eu)
        XCTAssertEqual(federation[eu].progress(of: intent.erasureID)?.missing, [us])

        try federation.exchange(br, eu)
        XCTAssertEqual(federation[br].intentsAwaitingAck, [], "br is not expected")
        // An ack from a region not expected, and one naming another request, do not count.
        try federation[br].publish(.erasureAck(Fixtures.ack(of: intent, by: br)))
        let other = Fixtures.intent(2, from: eu, expecting: [eu, us])
        let wrong = Fixtures.ack(of: other, by: us)
        let misbound = ErasureAck(erasureID: intent.erasureID, requestHash: wrong.requestHash, region: us, node: "us-1", scope: wrong.scope,
                                  erasedAt: wrong.erasedAt, counts: [:], linkHash: intent.linkHash, walTruncated: true, policyVersion: 2,
                                  signature: wrong.signature, publicKey: wrong.publicKey)
        try federation.drain(br)
        try federation.exchange(eu, br)
        var forged = try Fixtures.node(us)
        try forged.publish(.erasureAck(misbound))
        federation[eu].step(FederationEnvelope(from: us, to: eu, message: .deltas(entries: forged.entries(from: us), digest: nil, more: false)))
        try federation.drain(eu)
        XCTAssertEqual(federation[eu].progress(of: intent.erasureID)?.isComplete, false)
        XCTAssertEqual(federation[eu].progress(of: intent.erasureID)?.missing, [us])
        // us's real ack, after the misbound one, completes it.
        var real = forged
        try real.publish(.erasureAck(Fixtures.ack(of: intent, by: us)))
        federation[eu].step(FederationEnvelope(from: us, to: eu, message: .deltas(entries: real.entries(from: us), digest: nil, more: false)))
        XCTAssertEqual(federation[eu].progress(of: intent.erasureID)?.isComplete, true)
    }

    func test_erasure_completesWhenEveryExpectedRegionAcked() throws {
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us)])
        let intent = Fixtures.intent(1, from: eu, expecting: [eu, us])
        try federation[eu].publish(.erasureIntent(intent))
        try federation[eu].publish(.erasureAck(Fixtures.ack(of: intent, by: eu)))
        try federation.drain(eu)
        try federation.exchange(us, eu)
        XCTAssertEqual(federation[us].intentsAwaitingAck, [intent])
        try federation[us].publish(.erasureAck(Fixtures.ack(of: intent, by: us)))
        try federation.drain(us)
        XCTAssertEqual(federation[eu].progress(of: intent.erasureID)?.isComplete, false)
        try federation.exchange(us, eu)
        let progress = try XCTUnwrap(federation[eu].progress(of: intent.erasureID))
        XCTAssertTrue(progress.isComplete)
        XCTAssertEqual(Set(progress.acks.keys), [eu, us])
        // Re-sending the intent and the ack changes nothing.
        let entries = federation[us].entries(from: us) + federation[us].entries(from: eu)
        federation[eu].step(FederationEnvelope(from: us, to: eu, message: .deltas(entries: entries, digest: nil, more: false)))
        XCTAssertFalse(federation[eu].hasReady)
    }

    func test_tick_sendsADigestToAPeerEveryExchangeTicks() throws {
        var node = try Fixtures.node(eu, peers: [eu, us])
        for _ in 1..<FederationSettings.testing.exchangeTicks { node.tick() }
        XCTAssertFalse(node.hasReady)
        node.tick()
        XCTAssertEqual(node.ready().messages, [FederationEnvelope(from: eu, to: us, message: .digest(VersionVector()))])
    }

    func test_messagesForAnotherRegion_changeNothing() throws {
        var node = try Fixtures.node(eu)
        node.step(FederationEnvelope(from: us, to: br, message: .digest(VersionVector())))
        node.step(FederationEnvelope(from: eu, to: eu, message: .digest(VersionVector())))
        XCTAssertFalse(node.hasReady)
    }

    func test_settings_refuseAnExchangeThatCannotHoldTheLargestRecord() {
        var settings = FederationSettings()
        settings.exchangeBytesMax = settings.recordBytesMax
        XCTAssertThrowsError(try Fixtures.node(eu, settings: settings))
    }
}
