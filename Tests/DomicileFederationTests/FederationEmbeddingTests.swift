@testable import DomicileFederation
import DomicileModel
import DomicilePrivacy
import XCTest

/// Noised embeddings in the machine: the newest generation of a
/// (region, collection, pid) wins, what it supersedes or an erasure names is
/// retired everywhere (its body dropped, its position kept), and a retired
/// placeholder travels as it is.
final class FederationEmbeddingTests: XCTestCase {
    private let eu = Fixtures.eu, us = Fixtures.us, br = Fixtures.br

    private func bodies(_ node: FederationNode, from origin: RegionID) -> [FederationEntry.Body] {
        node.entries(from: origin).map(\.body)
    }

    func test_aNewerGeneration_retiresTheOlderBody_atTheOriginAndAtTheReceiver() throws {
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us)])
        let first = Fixtures.embedding(1, in: eu, generation: 1)
        try federation[eu].publish(.noisedEmbedding(first))
        try federation.drain(eu)
        try federation.exchange(us, eu)
        XCTAssertEqual(bodies(federation[us], from: eu), [.record(.noisedEmbedding(first))])

        let retraction = Fixtures.embedding(1, in: eu, generation: 2, vector: nil)
        try federation[eu].publish(.noisedEmbedding(retraction))
        let ready = federation[eu].ready()
        XCTAssertEqual(ready.retire, [FederationEntry(origin: eu, seq: 1, body: .retired(.noisedEmbedding))],
                       "the origin's shell drops its stored copy of the superseded body")
        XCTAssertEqual(bodies(federation[eu], from: eu), [.retired(.noisedEmbedding), .record(.noisedEmbedding(retraction))])

        try federation.exchange(us, eu)
        XCTAssertEqual(bodies(federation[us], from: eu), [.retired(.noisedEmbedding), .record(.noisedEmbedding(retraction))])
        XCTAssertEqual(federation.readies[us]!.last { !$0.retire.isEmpty }?.retire.map(\.seq), [1])
        XCTAssertEqual(federation.readies[us]!.flatMap(\.apply).compactMap(\.body.record).last, .noisedEmbedding(retraction),
                       "the receiver's shell is told to drop its replica")
    }

    func test_aRetiredPlaceholder_isRelayed_soALateRegionIsNotBlocked() throws {
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us), try Fixtures.node(br)])
        try federation[eu].publish(.noisedEmbedding(Fixtures.embedding(1, in: eu, generation: 1)))
        let second = Fixtures.embedding(1, in: eu, generation: 2, vector: [1, 1, 1])
        try federation[eu].publish(.noisedEmbedding(second))
        try federation.drain(eu)
        try federation.exchange(us, eu)
        // eu is gone; br learns eu's records from us alone.
        try federation.exchange(br, us)
        XCTAssertEqual(federation[br].vector[eu], 2, "us relays the retired position instead of ending eu's run")
        XCTAssertEqual(bodies(federation[br], from: eu), [.retired(.noisedEmbedding), .record(.noisedEmbedding(second))])
        XCTAssertFalse(federation.readies[br]!.flatMap(\.persist).contains { $0.seq == 1 && $0.body.record != nil },
                       "br never persists the superseded body")
    }

    func test_anOlderGenerationArrivingLate_isRetiredOnArrival() throws {
        var us = try Fixtures.node(us)
        let newer = FederationEntry(origin: eu, seq: 1, body: .record(.noisedEmbedding(Fixtures.embedding(1, in: eu, generation: 5))))
        let older = FederationEntry(origin: eu, seq: 2, body: .record(.noisedEmbedding(Fixtures.embedding(1, in: eu, generation: 3))))
        us.step(FederationEnvelope(from: eu, to: self.us, message: .deltas(entries: [newer, older], digest: nil, more: false)))
        let ready = us.ready()
        XCTAssertEqual(ready.persist.map(\.body), [newer.body, .retired(.noisedEmbedding)])
        XCTAssertEqual(ready.apply, [newer])
        XCTAssertTrue(ready.retire.isEmpty)
    }

    func test_anErasureIntent_retiresEveryCopyOfItsPids_andThoseThatArriveLater() throws {
        var federation = Federation([try Fixtures.node(eu), try Fixtures.node(us), try Fixtures.node(br)])
        let intent = Fixtures.intent(1, from: us, expecting: [eu, us, br], pids: 1)
        let erased = intent.erasedPids[0]
        let copy = try NoisedEmbedding(region: eu, collection: Fixtures.collection, purpose: try Purpose("product_recs"), pid: erased,
                                       generation: 1,
                                       exportedAt: Timestamp(milliseconds: 1), content: .vector([1, 2, 3], sigma: 0.1, epsilon: 2, delta: 1e-6))
        let kept = Fixtures.embedding(7, in: eu, generation: 1)
        try federation[eu].publish(.noisedEmbedding(copy))
        try federation[eu].publish(.noisedEmbedding(kept))
        try federation.drain(eu)
        try federation.exchange(br, eu)
        try federation[us].publish(.erasureIntent(intent))
        try federation.drain(us)
        try federation.exchange(br, us)
        XCTAssertEqual(bodies(federation[br], from: eu), [.retired(.noisedEmbedding), .record(.noisedEmbedding(kept))])
        XCTAssertEqual(federation.readies[br]!.last { !$0.retire.isEmpty }?.retire.map(\.seq), [1])

        // us hears of eu's copy only after the intent: it never keeps the body.
        try federation.exchange(us, eu)
        XCTAssertEqual(bodies(federation[us], from: eu), [.retired(.noisedEmbedding), .record(.noisedEmbedding(kept))])
        XCTAssertFalse(federation.readies[us]!.flatMap(\.persist).contains { $0.origin == eu && $0.seq == 1 && $0.body.record != nil })
    }

    func test_anExportAboveTheNoiseFloor_travelsAsAPlaceholder_itsRetractionTravels() throws {
        let transfer = FederationTransfer({ _, _, _ in true }, admitting: { record, _, _ in
            guard case .noisedEmbedding(let embedding) = record, let epsilon = embedding.epsilon else { return true }
            return epsilon <= 8
        })
        var federation = Federation([try Fixtures.node(eu, transfer: transfer), try Fixtures.node(us, transfer: transfer)])
        let loud = Fixtures.embedding(1, in: eu, generation: 1, epsilon: 16)
        let retraction = Fixtures.embedding(1, in: eu, generation: 2, vector: nil)
        try federation[eu].publish(.noisedEmbedding(loud))
        try federation.drain(eu)
        try federation.exchange(us, eu)
        XCTAssertEqual(bodies(federation[us], from: eu), [.skipped(.noisedEmbedding)])
        try federation[eu].publish(.noisedEmbedding(retraction))
        try federation.drain(eu)
        try federation.exchange(us, eu)
        XCTAssertEqual(bodies(federation[us], from: eu), [.skipped(.noisedEmbedding), .record(.noisedEmbedding(retraction))])
    }

    func test_restore_keepsRetiredPositions_andTheNewestGeneration() throws {
        let first = Fixtures.embedding(1, in: eu, generation: 1)
        let second = Fixtures.embedding(1, in: eu, generation: 2, vector: [3, 2, 1])
        var node = try Fixtures.node(us, restoring: [FederationEntry(origin: eu, seq: 1, body: .retired(.noisedEmbedding)),
                                                     FederationEntry(origin: eu, seq: 2, body: .record(.noisedEmbedding(second)))])
        XCTAssertFalse(node.hasReady, "a consistent store restores with nothing to do")
        node.step(FederationEnvelope(from: eu, to: us, message: .deltas(entries: [
            FederationEntry(origin: eu, seq: 3, body: .record(.noisedEmbedding(first)))], digest: nil, more: false)))
        XCTAssertEqual(node.ready().persist.map(\.body), [.retired(.noisedEmbedding)], "generation 1 after 2 is stale")
    }
}

/// What a peer could send as a noised embedding, refused by the codec.
final class FederationEmbeddingCodecTests: XCTestCase {
    private let eu = Fixtures.eu, us = Fixtures.us

    func test_aRetiredPlaceholder_ofAnotherKind_isRefused() throws {
        for kind in FederationRecordKind.allCases where kind != .noisedEmbedding {
            let envelope = FederationEnvelope(from: eu, to: us, message: .deltas(entries: [FederationEntry(origin: eu, seq: 1, body: .retired(kind))],
                                                                                 digest: nil, more: false))
            XCTAssertThrowsError(try FederationCodec.decode(try FederationCodec.encode(envelope)), "a retired \(kind) would stall its origin")
        }
        let retired = FederationEnvelope(from: eu, to: us, message: .deltas(entries: [FederationEntry(origin: eu, seq: 1, body: .retired(.noisedEmbedding))],
                                                                            digest: nil, more: false))
        XCTAssertEqual(try FederationCodec.decode(try FederationCodec.encode(retired)), retired)
    }

    func test_invalidCopies_areRefused() throws {
        let purpose = try Purpose("product_recs")
        // Another region's pid, no generation, a non-finite component, an empty vector, ε of 0.
        XCTAssertThrowsError(try NoisedEmbedding(region: us, collection: Fixtures.collection, purpose: purpose, pid: Fixtures.pid(1, in: eu),
                                                 generation: 1, exportedAt: Timestamp(milliseconds: 1), content: .retracted))
        XCTAssertThrowsError(try NoisedEmbedding(region: eu, collection: Fixtures.collection, purpose: purpose, pid: Fixtures.pid(1, in: eu),
                                                 generation: 0, exportedAt: Timestamp(milliseconds: 1), content: .retracted))
        for content: NoisedEmbedding.Content in [.vector([1, .nan], sigma: 1, epsilon: 1, delta: 1e-6), .vector([], sigma: 1, epsilon: 1, delta: 1e-6),
                                                 .vector([1], sigma: 1, epsilon: 0, delta: 1e-6), .vector([1], sigma: .infinity, epsilon: 1, delta: 1e-6)] {
            XCTAssertThrowsError(try NoisedEmbedding(region: eu, collection: Fixtures.collection, purpose: purpose, pid: Fixtures.pid(1, in: eu),
                                                     generation: 1, exportedAt: Timestamp(milliseconds: 1), content: content))
        }
        // The same refusals from bytes: a valid record's encoding with its content tag, count or a component changed.
        let bytes = try FederationCodec.encode(.noisedEmbedding(Fixtures.embedding(1, in: eu, generation: 1, vector: [0.5, 0.25])))
        let tagOffset = bytes.count - (1 + 3 * 8 + 2 + 2 * 4)
        var unknownTag = bytes
        unknownTag[tagOffset] = 9
        var zeroCount = bytes
        zeroCount[tagOffset + 25] = 0
        zeroCount[tagOffset + 26] = 0
        var notANumber = bytes
        for (index, byte) in withUnsafeBytes(of: Float.nan.bitPattern.bigEndian, Array.init).enumerated() { notANumber[bytes.count - 4 + index] = byte }
        for mutated in [unknownTag, zeroCount, notANumber, bytes + [0]] {
            XCTAssertThrowsError(try FederationCodec.decodeRecord(.noisedEmbedding, mutated))
        }
        XCTAssertNoThrow(try FederationCodec.decodeRecord(.noisedEmbedding, bytes))
    }
}
