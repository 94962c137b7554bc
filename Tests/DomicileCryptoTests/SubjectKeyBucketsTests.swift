@testable import DomicileCrypto
import DomicileModel
import XCTest

final class SubjectKeyBucketsTests: XCTestCase {
    let master = try! MasterKey(base64: MasterKey.generateBase64())

    func test_rotation_addsACurrentVersion_andDestroyKeepsOnlyIt() {
        var buckets = SubjectKeyBuckets.generate(count: 8, createdAt: 1)
        XCTAssertEqual(buckets.keys.count, 8)
        XCTAssertTrue(buckets.retired.isEmpty)
        let old = buckets.current(3)!
        let new = buckets.rotate(3, createdAt: 2)
        XCTAssertEqual(new.version, 2)
        XCTAssertEqual(buckets.current(3)?.version, 2)
        XCTAssertEqual(buckets.versions(of: 3).map(\.version), [1, 2])
        XCTAssertEqual(buckets.retired.map(\.bucket), [3])
        XCTAssertNotEqual(old.material.bytesForSealing, new.material.bytesForSealing)
        // A bucket's current version is never destroyed, whatever is asked.
        buckets.destroy(buckets.versions(of: 3).map { $0 })
        XCTAssertEqual(buckets.versions(of: 3).map(\.version), [2])
        XCTAssertNil(buckets.key(3, version: 1))
        XCTAssertEqual((0..<8).map { buckets.current(UInt16($0))?.version }, [1, 1, 1, 2, 1, 1, 1, 1])
    }

    func test_pidsFillTheBucketsEvenly() throws {
        let keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        let pseudonymizer = try keyring.pseudonymizers().current
        var counts = [Int](repeating: 0, count: 16)
        for index in 0..<16_000 {
            let pid = pseudonymizer.pid(for: Identifier(kind: .email, normalized: "user\(index)@example.com"))
            counts[Int(SubjectKeyBuckets.bucket(of: pid, count: 16))] += 1
        }
        // 1000 expected per bucket; 6 standard deviations (about 31 each) either side.
        XCTAssertTrue(counts.allSatisfy { (810...1190).contains($0) }, "\(counts)")
    }

    func test_bucketKeys_areSealedInTheKeyring_andInheritedWithinTheRegionOnly() throws {
        let eu1 = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        XCTAssertEqual(eu1.buckets.count, SubjectKeyBuckets.defaultCount)
        var rotated = eu1
        rotated.buckets.rotate(7, createdAt: 5)
        let opened = try Keyring.unseal(rotated.sealed(with: master), with: master)
        XCTAssertEqual(opened.buckets.count, SubjectKeyBuckets.defaultCount)
        XCTAssertEqual(opened.buckets.versions(of: 7).map(\.version), [1, 2])
        XCTAssertEqual(opened.buckets.current(7)?.material.bytesForSealing, rotated.buckets.current(7)?.material.bytesForSealing)
        XCTAssertLessThan(rotated.sealed(with: master).count, 200_000, "the keyring stays small at the default bucket count")

        // Another node of the region wraps the same subjects' keys (one replicated database): same bucket keys.
        let eu2 = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-2"), createdAt: 2, inheriting: eu1)
        XCTAssertEqual(try eu2.primary(.data).material.bytesForSealing, try eu1.primary(.data).material.bytesForSealing)
        XCTAssertEqual(eu2.buckets.keys.map(\.material.bytesForSealing), eu1.buckets.keys.map(\.material.bytesForSealing))
        XCTAssertNotEqual(try eu2.primary(.nodeSigning).material.bytesForSealing, try eu1.primary(.nodeSigning).material.bytesForSealing)
        // Another region's are its own.
        let us1 = Keyring.generate(region: try RegionID("us"), node: try NodeName("us-1"), createdAt: 2, inheriting: eu1)
        XCTAssertNotEqual(us1.buckets.current(0)?.material.bytesForSealing, eu1.buckets.current(0)?.material.bytesForSealing)
    }

    // MARK: The ratchet

    /// Bucket 5 at version 1 with material 00 01 … 1f.
    func knownBuckets() -> SubjectKeyBuckets {
        SubjectKeyBuckets(count: 8, keys: (0..<8).map { bucket in
            BucketKey(bucket: UInt16(bucket), version: 1, createdAt: 1,
                      material: SecretBytes(bucket == 5 ? Array(0..<32) : [UInt8](repeating: UInt8(bucket), count: 32)))
        })
    }

    /// HMAC-SHA256(key: v's material, "domicile/bucket-key-ratchet/v1" ‖ bucket u16 BE ‖ v+1 u32 BE),
    /// computed independently (Python's hmac module).
    func test_ratchet_knownAnswer() {
        var buckets = knownBuckets()
        let two = buckets.rotate(5, createdAt: 2)
        XCTAssertEqual(two.version, 2)
        XCTAssertEqual(Hex.encode(two.material.bytesForSealing), "dd78ed17aeffd884afd6381b2d23ecdcee99f81e749643af23158f814fcf0938")
        let three = buckets.rotate(5, createdAt: 3)
        XCTAssertEqual(Hex.encode(three.material.bytesForSealing), "fabb4d3ad389d87cfa1ac4c54659e2dd0893d6099e2d49424f7b2e73d567c3f4")
        XCTAssertEqual(buckets.versions(of: 5).map(\.version), [1, 2, 3])
        XCTAssertEqual(buckets.current(4)?.version, 1, "other buckets do not move")
    }

    func test_twoKeyringsWithTheSameBuckets_ratchetToTheSameKeys_withoutExchangingAny() {
        let shared = SubjectKeyBuckets.generate(count: 16, createdAt: 1)
        var leader = shared
        var follower = SubjectKeyBuckets(count: 16, keys: shared.keys.map {
            BucketKey(bucket: $0.bucket, version: $0.version, createdAt: $0.createdAt, material: SecretBytes($0.material.bytesForSealing))
        })
        for bucket: UInt16 in [3, 3, 9, 3, 15] { leader.rotate(bucket, createdAt: 2) }
        XCTAssertEqual(follower.ratchet(3, to: 4, createdAt: 7).version, 4)
        follower.ratchet(9, to: 2, createdAt: 7)
        follower.ratchet(15, to: 2, createdAt: 7)
        for bucket: UInt16 in [3, 9, 15, 0] {
            XCTAssertEqual(follower.current(bucket)?.version, leader.current(bucket)?.version)
            XCTAssertEqual(follower.current(bucket)?.material.bytesForSealing, leader.current(bucket)?.material.bytesForSealing)
        }
        // Different starting keys (another region) lead elsewhere.
        var other = SubjectKeyBuckets.generate(count: 16, createdAt: 1)
        other.ratchet(3, to: 4, createdAt: 7)
        XCTAssertNotEqual(other.current(3)?.material.bytesForSealing, leader.current(3)?.material.bytesForSealing)
    }

    func test_ratchetSeveralSteps_equalsSingleSteps_andKeepsOnlyTheTarget() {
        var stepped = knownBuckets()
        var jumped = knownBuckets()
        for _ in 0..<3 { stepped.rotate(5, createdAt: 2) }
        let target = jumped.ratchet(5, to: 4, createdAt: 2)
        XCTAssertEqual(target.version, 4)
        XCTAssertEqual(target.material.bytesForSealing, stepped.current(5)?.material.bytesForSealing)
        XCTAssertEqual(jumped.versions(of: 5).map(\.version), [1, 4], "the versions passed through are derived, not kept")
        XCTAssertEqual(jumped.retired.map(\.version), [1])
    }

    func test_ratchet_atOrBelowTheCurrentVersion_changesNothing() {
        var buckets = knownBuckets()
        buckets.ratchet(5, to: 3, createdAt: 2)
        let before = buckets.keys.map { ($0.bucket, $0.version, $0.material.bytesForSealing) }
        for version: UInt32 in [0, 1, 2, 3] {
            XCTAssertEqual(buckets.ratchet(5, to: version, createdAt: 9).version, 3)
        }
        let after = buckets.keys.map { ($0.bucket, $0.version, $0.material.bytesForSealing) }
        XCTAssertEqual(after.count, before.count)
        for (one, other) in zip(before, after) {
            XCTAssertTrue(one.0 == other.0 && one.1 == other.1 && one.2 == other.2)
        }
    }

    /// Crypto-shredding still holds: once version 1 is destroyed, nothing in
    /// the sealed keyring opens a key wrapped under it, though version 2 was
    /// derived from it.
    func test_aDestroyedVersion_cannotBeRecoveredFromTheKeyringFile() throws {
        var keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        keyring.buckets = knownBuckets()
        let pid = try keyring.pseudonymizers().current.pid(for: Identifier(kind: .email, normalized: "erased@example.com"))
        let bucket = SubjectKeyBuckets.bucket(of: pid, count: 8)
        var random = SecureRandom()
        let secret = SecretBytes(randomCount: 32)
        let wrapped = WrappedSubjectKey.wrap(secret, for: pid, under: keyring.buckets.current(bucket)!, using: &random)
        XCTAssertEqual(try WrappedSubjectKey.unwrap(wrapped, for: pid, under: keyring.buckets.current(bucket)!), secret.bytesForSealing)

        keyring.buckets.rotate(bucket, createdAt: 2)
        keyring.buckets.destroy(keyring.buckets.retired)
        let reopened = try Keyring.unseal(keyring.sealed(with: master), with: master)
        XCTAssertEqual(reopened.buckets.versions(of: bucket).map(\.version), [2])
        XCTAssertNil(reopened.buckets.key(bucket, version: 1))
        // No material left in the file (nor any ratcheted on from it, which only goes forward) opens it,
        // even presented as the version the wrapped key names.
        var forward = reopened.buckets
        forward.ratchet(bucket, to: 5, createdAt: 3)
        for key in reopened.buckets.keys + forward.versions(of: bucket) {
            let asVersion1 = BucketKey(bucket: bucket, version: 1, createdAt: 0, material: key.material)
            XCTAssertThrowsError(try WrappedSubjectKey.unwrap(wrapped, for: pid, under: asVersion1), "bucket \(key.bucket) v\(key.version)")
        }
    }

    func test_aKeyringFromBeforeBuckets_stillOpens_withoutBuckets() throws {
        // Format 1: the same layout without the bucket section.
        let keyring = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        var legacy = keyring
        legacy.buckets = .none
        let sealed = legacy.sealed(with: master)
        let box = Array(sealed.dropFirst(Keyring.fileMagic.count))
        var plaintext = try Envelope.open(box, key: master.key, associatedData: Keyring.fileMagic)
        XCTAssertEqual(plaintext[0], 2)
        XCTAssertEqual(Array(plaintext.suffix(8)), [0, 0, 0, 0, 0, 0, 0, 0], "an empty bucket section")
        plaintext = Array(plaintext.dropLast(8))
        plaintext[0] = 1
        let format1 = Keyring.fileMagic + Envelope.seal(plaintext, key: master.key, associatedData: Keyring.fileMagic)
        let opened = try Keyring.unseal(format1, with: master)
        XCTAssertEqual(opened.buckets.count, 0)
        XCTAssertEqual(try opened.primary(.data).version, 1)
    }
}
