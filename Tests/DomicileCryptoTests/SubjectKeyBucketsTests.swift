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

    func test_bucketKeys_areSealedInTheKeyring_andNeverInherited() throws {
        let eu1 = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-1"), createdAt: 1)
        XCTAssertEqual(eu1.buckets.count, SubjectKeyBuckets.defaultCount)
        var rotated = eu1
        rotated.buckets.rotate(7, createdAt: 5)
        let opened = try Keyring.unseal(rotated.sealed(with: master), with: master)
        XCTAssertEqual(opened.buckets.count, SubjectKeyBuckets.defaultCount)
        XCTAssertEqual(opened.buckets.versions(of: 7).map(\.version), [1, 2])
        XCTAssertEqual(opened.buckets.current(7)?.material.bytesForSealing, rotated.buckets.current(7)?.material.bytesForSealing)
        XCTAssertLessThan(rotated.sealed(with: master).count, 200_000, "the keyring stays small at the default bucket count")

        // Another node of the region has its own bucket keys: a rotation on one node must not leave the old
        // version alive in another node's keyring.
        let eu2 = Keyring.generate(region: try RegionID("eu"), node: try NodeName("eu-2"), createdAt: 2, inheriting: eu1)
        XCTAssertEqual(try eu2.primary(.data).material.bytesForSealing, try eu1.primary(.data).material.bytesForSealing)
        XCTAssertNotEqual(eu2.buckets.current(0)?.material.bytesForSealing, eu1.buckets.current(0)?.material.bytesForSealing)
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
