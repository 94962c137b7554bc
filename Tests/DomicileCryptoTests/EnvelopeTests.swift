import DomicileCrypto
import DomicileModel
import XCTest

final class EnvelopeTests: XCTestCase {
    let key1 = try! AESGCMKey(version: 1, secret: SecretBytes(randomCount: 32))
    let key2 = try! AESGCMKey(version: 2, secret: SecretBytes(randomCount: 32))
    let plaintext = Array("a feature value".utf8)
    let rowKey = Array("features/psn:v1:eu:abc/last_category".utf8)

    func test_envelope_hasTheDocumentedLayout() throws {
        let box = Envelope.seal(plaintext, key: key2, associatedData: rowKey)
        XCTAssertEqual(box.count, 1 + 4 + 12 + plaintext.count + 16)
        XCTAssertEqual(box[0], Envelope.format)
        XCTAssertEqual(Array(box[1..<5]), [0, 0, 0, 2], "key version, big-endian")
        XCTAssertEqual(try Envelope.keyVersion(of: box), 2)
        XCTAssertNotEqual(Array(box[17..<(17 + plaintext.count)]), plaintext)
    }

    func test_envelope_roundTripsAndUsesFreshNonces() throws {
        let keys = KeySet([key1, key2])
        let first = keys.seal(plaintext, associatedData: rowKey)
        let second = keys.seal(plaintext, associatedData: rowKey)
        XCTAssertNotEqual(first, second, "a random nonce per seal")
        XCTAssertEqual(try keys.open(first, associatedData: rowKey), plaintext)
        XCTAssertEqual(try Envelope.keyVersion(of: first), 2, "the newest key encrypts")
        let old = Envelope.seal(plaintext, key: key1, associatedData: rowKey)
        XCTAssertEqual(try keys.open(old, associatedData: rowKey), plaintext, "older versions stay readable")
    }

    func test_envelope_rejectsEveryTamperedByte() throws {
        let box = Envelope.seal(plaintext, key: key1, associatedData: rowKey)
        for index in box.indices {
            var tampered = box
            tampered[index] ^= 0x01
            XCTAssertThrowsError(try Envelope.open(tampered, keys: KeySet([key1]), associatedData: rowKey), "byte \(index)")
        }
    }

    func test_envelope_rejectsWrongAssociatedData() {
        let box = Envelope.seal(plaintext, key: key1, associatedData: rowKey)
        XCTAssertThrowsError(try Envelope.open(box, key: key1, associatedData: Array("features/other".utf8))) {
            XCTAssertEqual($0 as? CryptoError, .authenticationFailed)
        }
    }

    func test_envelope_rejectsWrongOrUnknownKeyVersion() throws {
        let box = Envelope.seal(plaintext, key: key1, associatedData: rowKey)
        XCTAssertThrowsError(try Envelope.open(box, keys: KeySet([key2]), associatedData: rowKey)) {
            XCTAssertEqual($0 as? CryptoError, .unknownKeyVersion(1))
        }
        // Same version number, different key material: authentication fails.
        let impostor = try AESGCMKey(version: 1, secret: SecretBytes(randomCount: 32))
        XCTAssertThrowsError(try Envelope.open(box, key: impostor, associatedData: rowKey)) {
            XCTAssertEqual($0 as? CryptoError, .authenticationFailed)
        }
        // Relabelling the version (to a key that exists) breaks the authenticated header.
        var relabelled = Envelope.seal(plaintext, key: key1, associatedData: rowKey)
        relabelled[4] = 2
        XCTAssertThrowsError(try Envelope.open(relabelled, keys: KeySet([key1, key2]), associatedData: rowKey))
    }

    func test_envelope_rejectsTruncationAndUnknownFormat() {
        XCTAssertThrowsError(try Envelope.open([1, 0, 0, 0, 1], key: key1, associatedData: rowKey))
        var box = Envelope.seal(plaintext, key: key1, associatedData: rowKey)
        box[0] = 9
        XCTAssertThrowsError(try Envelope.open(box, key: key1, associatedData: rowKey)) {
            XCTAssertEqual($0 as? CryptoError, .unsupportedFormat(9))
        }
    }

    func test_constantTime_equals() {
        XCTAssertTrue(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(ConstantTime.equals([1, 2, 3], [1, 2]))
        XCTAssertTrue(ConstantTime.equals([UInt8](), [UInt8]()))
    }

    func test_secureRandom_producesDistinctValues() {
        var generator = SecureRandom()
        let values = (0..<1000).map { _ in generator.next() }
        XCTAssertEqual(Set(values).count, 1000)
        XCTAssertNotEqual(SecureRandom.bytes(32), SecureRandom.bytes(32))
        let bits = (0..<10_000).map { _ in Int.random(in: 0...1, using: &generator) }.reduce(0, +)
        XCTAssertTrue((4_500...5_500).contains(bits), "a fair coin: \(bits) ones of 10000")
    }

    func test_secretBytes_neverPrintsItsBytes() {
        let secret = SecretBytes([0xDE, 0xAD, 0xBE, 0xEF])
        XCTAssertFalse("\(secret)".lowercased().contains("de"))
        XCTAssertFalse(String(reflecting: secret).contains("222"))
    }
}
