@testable import DomicileFederation
import DomicileModel
import DomicilePrivacy
import XCTest

/// The federation's wire format: round trips, bounds, refusals, and no way
/// to carry what must stay in its region.
final class FederationCodecTests: XCTestCase {
    private let eu = Fixtures.eu, us = Fixtures.us

    private var sampleRecords: [FederationRecord] {
        let intent = Fixtures.intent(3, from: eu, expecting: [eu, us, Fixtures.br], pids: 5)
        return [.aggregate(Fixtures.release(1, in: eu)), .aggregate(Fixtures.release(2, in: eu, categories: 12)),
                .erasureIntent(intent), .erasureAck(Fixtures.ack(of: intent, by: us)),
                .noisedEmbedding(Fixtures.embedding(4, in: eu, generation: 1, vector: (0..<384).map { Float($0) / 384 })),
                .noisedEmbedding(Fixtures.embedding(4, in: eu, generation: 2, vector: nil))]
    }

    private var sampleMessages: [FederationEnvelope] {
        let entries = sampleRecords.enumerated().map { FederationEntry(origin: $0.element.region, seq: UInt64($0.offset + 1), body: .record($0.element)) }
            + [FederationEntry(origin: us, seq: 9, body: .skipped(.aggregate)), FederationEntry(origin: us, seq: 10, body: .retired(.noisedEmbedding))]
        return [FederationEnvelope(from: eu, to: us, message: .digest(VersionVector([eu: 4, us: 12]))),
                FederationEnvelope(from: eu, to: us, message: .digest(VersionVector())),
                FederationEnvelope(from: us, to: eu, message: .deltas(entries: entries, digest: VersionVector([us: 9]), more: true)),
                FederationEnvelope(from: us, to: eu, message: .deltas(entries: [], digest: nil, more: false))]
    }

    func test_everyMessageAndRecord_roundTrips() throws {
        for envelope in sampleMessages {
            XCTAssertEqual(try FederationCodec.decode(try FederationCodec.encode(envelope)), envelope)
        }
        for record in sampleRecords {
            let body = try FederationCodec.encode(record)
            XCTAssertEqual(try FederationCodec.decodeRecord(record.kind, body), record)
            XCTAssertEqual(FederationCodec.bodySize(of: record), body.count, "bodySize agrees with encode for \(record.kind)")
        }
    }

    func test_decodedRecords_keepTheirSignatures() throws {
        let intent = Fixtures.intent(4, from: eu, expecting: [eu, us])
        let ack = Fixtures.ack(of: intent, by: us)
        guard case .erasureIntent(let decodedIntent) = try FederationCodec.decodeRecord(.erasureIntent, try FederationCodec.encode(.erasureIntent(intent))),
              case .erasureAck(let decodedAck) = try FederationCodec.decodeRecord(.erasureAck, try FederationCodec.encode(.erasureAck(ack))) else {
            return XCTFail("wrong kinds")
        }
        XCTAssertTrue(decodedIntent.request.isValid)
        XCTAssertTrue(decodedAck.isValid)
        XCTAssertEqual(decodedAck.requestHash, decodedIntent.request.hash)
    }

    func test_refuses_anotherVersion_anUnknownType_trailingBytes_andAnOversizedMessage() throws {
        let bytes = try FederationCodec.encode(sampleMessages[0])
        var version = bytes
        version[0] = 2
        var type = bytes
        type[1] = 3
        for (bad, reason) in [(version, "unknown version"), (type, "unknown message type"), (bytes + [0], "trailing bytes")] {
            XCTAssertEqual(try? FederationCodec.decode(bad), nil)
            XCTAssertThrowsError(try FederationCodec.decode(bad)) { XCTAssertEqual($0 as? FederationError, .malformed(reason)) }
        }
        XCTAssertThrowsError(try FederationCodec.decode([UInt8](repeating: 1, count: FederationCodec.messageBytesMax + 1)))
    }

    func test_refuses_countsBeyondTheirBoundOrTheBytesThatRemain_beforeAllocating() throws {
        var writer = BinaryWriter()
        writer.write(FederationCodec.version)
        writer.write(UInt8(2))
        writer.write8(string: "eu")
        writer.write8(string: "us")
        writer.write(UInt8(0))
        writer.write(UInt32.max)
        XCTAssertThrowsError(try FederationCodec.decode(writer.bytes)) { XCTAssertEqual($0 as? FederationError, .malformed("a count over its bound")) }
        var few = BinaryWriter()
        few.write(raw: writer.bytes.dropLast(4))
        few.write(UInt32(1_000))
        XCTAssertThrowsError(try FederationCodec.decode(few.bytes)) {
            XCTAssertEqual($0 as? FederationError, .malformed("a count beyond the bytes that remain"))
        }
    }

    func test_randomAndMutatedBytes_areRefusedOrDecoded_neverATrap() throws {
        var random = SeededRandom(seed: 0xFED)
        let valid = try sampleMessages.map(FederationCodec.encode)
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int.random(in: 0...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            } else {
                bytes = valid.randomElement(using: &random)!
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    switch Int.random(in: 0..<3, using: &random) {
                    case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    case 1 where !bytes.isEmpty: bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &random)...)
                    default: bytes.insert(UInt8.random(in: 0...255, using: &random), at: Int.random(in: 0...bytes.count, using: &random))
                    }
                }
            }
            guard let envelope = try? FederationCodec.decode(bytes) else { continue }
            decoded += 1
            // Whatever decodes encodes again, to the same message.
            XCTAssertEqual(try FederationCodec.decode(try FederationCodec.encode(envelope)), envelope)
        }
        XCTAssertGreaterThan(decoded, 0, "some mutations (a changed number) still decode")
    }

    // MARK: Residency: nothing resident can be encoded

    /// The codec's kinds are exactly these four: adding one is a decision
    /// this test makes visible. None is a resident data class, and every
    /// resident class (identity, consent, feature, embedding, audit) has no
    /// kind: a noised embedding is its own class, never a full-precision vector.
    func test_recordKinds_areExactlyTheFourNonResidentOnes() {
        XCTAssertEqual(FederationRecordKind.allCases, [.aggregate, .erasureIntent, .erasureAck, .noisedEmbedding])
        XCTAssertEqual(FederationRecordKind.allCases.map(\.rawValue), [1, 2, 3, 4])
        XCTAssertEqual(FederationRecordKind.noisedEmbedding.dataClass, .noisedEmbedding)
        XCTAssertTrue(FederationRecordKind.allCases.allSatisfy { !$0.dataClass.isResident })
        let resident = DataClass.allCases.filter(\.isResident)
        XCTAssertEqual(Set(resident), [.identity, .consent, .feature, .embedding, .audit])
        for dataClass in resident {
            XCTAssertFalse(FederationRecordKind.allCases.contains { $0.dataClass == dataClass }, "\(dataClass) has a record kind")
        }
        // The enum of records: a switch with no default fails to compile if a case is added.
        for record in sampleRecords {
            switch record {
            case .aggregate(let release): XCTAssertEqual(record.kind, .aggregate, release.releaseID)
            case .erasureIntent(let intent): XCTAssertEqual(record.kind, .erasureIntent, intent.erasureID)
            case .erasureAck(let ack): XCTAssertEqual(record.kind, .erasureAck, ack.erasureID)
            case .noisedEmbedding(let embedding): XCTAssertEqual(record.kind, .noisedEmbedding, embedding.pid.rawValue)
            }
        }
    }

    /// An entry of any other kind number — what a resident row would need — is refused.
    func test_entriesOfAnyOtherKind_areRefused() throws {
        let entry = FederationEntry(origin: eu, seq: 1, body: .record(.aggregate(Fixtures.release(1, in: eu))))
        let bytes = try FederationCodec.encode(FederationEnvelope(from: eu, to: us, message: .deltas(entries: [entry], digest: nil, more: false)))
        // version · type · "eu" · "us" · flags · count: the entry's kind is after its origin and sequence.
        let kindOffset = 2 + 3 + 3 + 1 + 4 + 3 + 8
        XCTAssertEqual(bytes[kindOffset], FederationRecordKind.aggregate.rawValue)
        for kind in UInt8.min...UInt8.max where FederationRecordKind(rawValue: kind) == nil {
            var mutated = bytes
            mutated[kindOffset] = kind
            XCTAssertThrowsError(try FederationCodec.decode(mutated)) { XCTAssertEqual($0 as? FederationError, .malformed("unknown record kind")) }
        }
    }

    /// The transfer rules come from the policy per kind's class; a region or
    /// pair the policy does not name is denied.
    func test_policyTransfer_decidesPerKindAndDeniesWhatItDoesNotName() throws {
        let policy = try ResidencyPolicy(json: Array("""
            {"version": 2,
             "regions": {"eu": {"countries": ["DE"], "jurisdiction": "gdpr"}, "us": {"countries": ["US"], "jurisdiction": "cpra"},
                         "br": {"countries": ["BR"], "jurisdiction": "lgpd"}},
             "purposes": {},
             "transfers": [{"class": "aggregate", "from": "eu", "to": "us"},
                           {"class": "erasure_signal", "from": "*", "to": "*"}]}
            """.utf8))
        let transfer = FederationTransfer.policy(policy)
        XCTAssertTrue(transfer.allows(.aggregate, from: eu, to: us))
        XCTAssertFalse(transfer.allows(.aggregate, from: us, to: eu))
        XCTAssertFalse(transfer.allows(.aggregate, from: eu, to: Fixtures.br))
        XCTAssertTrue(transfer.allows(.erasureIntent, from: us, to: Fixtures.br))
        XCTAssertTrue(transfer.allows(.erasureAck, from: Fixtures.br, to: eu))
        let mars = try RegionID("mars")
        XCTAssertFalse(transfer.allows(.erasureIntent, from: eu, to: mars), "an unknown region is denied")
    }

    /// An identifier cannot ride in an intent: the subject is named by a
    /// 32-byte link hash and by pids, each of which must parse as a pid, and
    /// ids must be minted ids. An e-mail address in any of those places is refused.
    func test_anIdentifier_cannotBeSmuggledInAnIntentOrARelease() throws {
        let email = "alice.smith@example.com"
        let request = Fixtures.request(5, from: eu, expecting: [eu, us])
        XCTAssertThrowsError(try PID(parsing: email))
        let withEmailHash = SignedErasureRequest(erasureID: request.erasureID, requestedAt: request.requestedAt, dueAt: request.dueAt,
                                                 jurisdiction: request.jurisdiction, originRegion: eu, originNode: request.originNode,
                                                 policyVersion: 2, linkHash: Array(email.utf8), expectedNodes: request.expectedNodes,
                                                 signature: request.signature, publicKey: request.publicKey)
        XCTAssertThrowsError(try ErasureIntent(request: withEmailHash, erasedPids: [])) { XCTAssertEqual($0 as? FederationError, .invalidRecord("link hash")) }
        let withEmailID = SignedErasureRequest(erasureID: email, requestedAt: request.requestedAt, dueAt: request.dueAt,
                                               jurisdiction: request.jurisdiction, originRegion: eu, originNode: request.originNode,
                                               policyVersion: 2, linkHash: request.linkHash, expectedNodes: request.expectedNodes,
                                               signature: request.signature, publicKey: request.publicKey)
        XCTAssertThrowsError(try ErasureIntent(request: withEmailID, erasedPids: [])) { XCTAssertEqual($0 as? FederationError, .invalidRecord("erasure id")) }

        // On the wire: a pid's text replaced by an identifier of the same length is refused.
        let pid = Fixtures.pid(1, in: us)
        let intent = try ErasureIntent(request: request, erasedPids: [pid])
        let body = try FederationCodec.encode(.erasureIntent(intent))
        let disguised = Array(String(repeating: "x", count: pid.rawValue.utf8.count - email.utf8.count) .utf8) + Array(email.utf8)
        let range = try XCTUnwrap(body.firstRange(of: Array(pid.rawValue.utf8)))
        var mutated = body
        mutated.replaceSubrange(range, with: disguised)
        XCTAssertThrowsError(try FederationCodec.decodeRecord(.erasureIntent, mutated)) {
            XCTAssertEqual($0 as? FederationError, .invalidRecord("erased pid"))
        }
        // A release's id must be a minted release id.
        XCTAssertThrowsError(try AggregateRelease(releaseID: email, name: try Name("visits", what: "aggregate"), region: eu,
                                                  kind: try Name("count", what: "kind"), dataset: try Name("default", what: "dataset"),
                                                  result: .value(1), mechanism: try Name("laplace", what: "mechanism"), epsilon: 1,
                                                  delta: 0, noiseScale: 1, releasedAt: Timestamp(milliseconds: 0), policyVersion: 1))
    }

    func test_releases_refuseNumbersThatCannotBeReleased() {
        func release(epsilon: Double = 1, delta: Double = 0, value: Double = 1) throws -> AggregateRelease {
            try AggregateRelease(releaseID: Fixtures.id(.release, 1), name: try Name("visits", what: "aggregate"), region: eu,
                                 kind: try Name("count", what: "kind"), dataset: try Name("default", what: "dataset"), result: .value(value),
                                 mechanism: try Name("laplace", what: "mechanism"), epsilon: epsilon, delta: delta, noiseScale: 1,
                                 releasedAt: Timestamp(milliseconds: 0), policyVersion: 1)
        }
        XCTAssertNoThrow(try release())
        XCTAssertThrowsError(try release(epsilon: 0))
        XCTAssertThrowsError(try release(epsilon: .infinity))
        XCTAssertThrowsError(try release(delta: 1))
        XCTAssertThrowsError(try release(value: .nan))
    }
}
