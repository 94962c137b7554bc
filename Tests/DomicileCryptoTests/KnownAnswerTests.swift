import DomicileCrypto
import DomicileModel
import XCTest

func hex(_ text: String) -> [UInt8] {
    guard let bytes = Hex.decode(text) else { preconditionFailure("bad hex in test vector") }
    return bytes
}

/// RFC 4231 section 4: HMAC-SHA-256 test cases 1-7.
final class HMACKnownAnswerTests: XCTestCase {
    let cases: [(key: [UInt8], data: [UInt8], mac: String)] = [
        ([UInt8](repeating: 0x0B, count: 20), Array("Hi There".utf8),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ([UInt8](repeating: 0xAA, count: 20), [UInt8](repeating: 0xDD, count: 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), [UInt8](repeating: 0xCD, count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        // Case 5 is specified truncated to 128 bits.
        ([UInt8](repeating: 0x0C, count: 20), Array("Test With Truncation".utf8),
         "a3b6167473100ee06e0c796c2955552b"),
        ([UInt8](repeating: 0xAA, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ([UInt8](repeating: 0xAA, count: 131),
         Array(("This is a test using a larger than block-size key and a larger than block-size data. "
                + "The key needs to be hashed before being used by the HMAC algorithm.").utf8),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    func test_hmac_matchesRFC4231() throws {
        for (index, vector) in cases.enumerated() {
            let key = try HMACKey(key: vector.key)
            let mac = Hex.encode(key.authenticate(vector.data))
            XCTAssertTrue(mac.hasPrefix(vector.mac), "RFC 4231 case \(index + 1)")
        }
    }

    func test_hmac_reusesItsKeyedStateAcrossCallsAndThreads() throws {
        let key = try HMACKey(key: cases[1].key)
        let expected = hex(cases[1].mac)
        let data = cases[1].data
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<500 { XCTAssertEqual(key.authenticate(data), expected) }
        }
    }
}

/// The GCM specification's AES-256 test cases 13-16 (McGrew and Viega, as
/// used by NIST SP 800-38D validation).
final class AESGCMKnownAnswerTests: XCTestCase {
    static let key15 = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    static let iv15 = hex("cafebabefacedbaddecaf888")
    static let plaintext15 = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                                 + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
    static let ciphertext15 = hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                                  + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad")

    let cases: [(name: String, key: [UInt8], iv: [UInt8], plaintext: [UInt8], aad: [UInt8], ciphertext: [UInt8], tag: [UInt8])] = [
        ("13", [UInt8](repeating: 0, count: 32), [UInt8](repeating: 0, count: 12), [], [], [],
         hex("530f8afbc74536b9a963b4f1c4cb738b")),
        ("14", [UInt8](repeating: 0, count: 32), [UInt8](repeating: 0, count: 12), [UInt8](repeating: 0, count: 16), [],
         hex("cea7403d4d606b6e074ec5d3baf39d18"), hex("d0d1c8a799996bf0265b98b5d48ab919")),
        ("15", key15, iv15, plaintext15, [], ciphertext15, hex("b094dac5d93471bdec1a502270e3cc6c")),
        ("16", key15, iv15, Array(plaintext15.prefix(60)), hex("feedfacedeadbeeffeedfacedeadbeefabaddad2"),
         Array(ciphertext15.prefix(60)), hex("76fc6ece0f4e1768cddf8853bb2d551b")),
    ]

    func test_aesGCM_sealMatchesSpecVectors() throws {
        for vector in cases {
            var ciphertext = [UInt8](repeating: 0, count: vector.plaintext.count)
            var tag = [UInt8](repeating: 0, count: 16)
            try vector.key.withUnsafeBytes { key in
                try vector.iv.withUnsafeBytes { iv in
                    try vector.plaintext.withUnsafeBytes { plaintext in
                        try vector.aad.withUnsafeBytes { aad in
                            try ciphertext.withUnsafeMutableBytes { out in
                                try tag.withUnsafeMutableBytes { tagOut in
                                    try AESGCM.seal(key: key, nonce: iv, plaintext: plaintext, associatedData: aad,
                                                    ciphertext: out, tag: tagOut)
                                }
                            }
                        }
                    }
                }
            }
            XCTAssertEqual(ciphertext, vector.ciphertext, "case \(vector.name) ciphertext")
            XCTAssertEqual(tag, vector.tag, "case \(vector.name) tag")
        }
    }

    func test_aesGCM_openVerifiesSpecVectorsAndRejectsTampering() throws {
        for vector in cases {
            XCTAssertEqual(try open(vector.key, vector.iv, vector.ciphertext, vector.tag, vector.aad), vector.plaintext)
            var badTag = vector.tag
            badTag[0] ^= 1
            XCTAssertThrowsError(try open(vector.key, vector.iv, vector.ciphertext, badTag, vector.aad)) {
                XCTAssertEqual($0 as? CryptoError, .authenticationFailed)
            }
            XCTAssertThrowsError(try open(vector.key, vector.iv, vector.ciphertext, vector.tag, vector.aad + [0]))
        }
    }

    private func open(_ key: [UInt8], _ iv: [UInt8], _ ciphertext: [UInt8], _ tag: [UInt8], _ aad: [UInt8]) throws -> [UInt8] {
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count)
        try key.withUnsafeBytes { key in
            try iv.withUnsafeBytes { iv in
                try ciphertext.withUnsafeBytes { ciphertext in
                    try tag.withUnsafeBytes { tag in
                        try aad.withUnsafeBytes { aad in
                            try plaintext.withUnsafeMutableBytes { out in
                                try AESGCM.open(key: key, nonce: iv, ciphertext: ciphertext, tag: tag,
                                                associatedData: aad, plaintext: out)
                            }
                        }
                    }
                }
            }
        }
        return plaintext
    }
}

/// RFC 8032 section 7.1, tests 1-3.
final class Ed25519KnownAnswerTests: XCTestCase {
    let cases: [(secret: String, public: String, message: String, signature: String)] = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    func test_ed25519_matchesRFC8032() throws {
        for (index, vector) in cases.enumerated() {
            let key = try Ed25519PrivateKey(seed: hex(vector.secret))
            XCTAssertEqual(key.publicKey.rawRepresentation, hex(vector.public), "test \(index + 1) public key")
            XCTAssertEqual(key.signature(for: hex(vector.message)), hex(vector.signature), "test \(index + 1) signature")
            XCTAssertTrue(key.publicKey.isValidSignature(hex(vector.signature), for: hex(vector.message)))
        }
    }

    func test_ed25519_rejectsChangedMessageOrSignature() throws {
        let vector = cases[2]
        let publicKey = try Ed25519PublicKey(rawRepresentation: hex(vector.public))
        var signature = hex(vector.signature)
        XCTAssertFalse(publicKey.isValidSignature(signature, for: hex("af83")))
        signature[10] ^= 0x40
        XCTAssertFalse(publicKey.isValidSignature(signature, for: hex(vector.message)))
        XCTAssertFalse(publicKey.isValidSignature(Array(signature.prefix(63)), for: hex(vector.message)))
        XCTAssertThrowsError(try Ed25519PrivateKey(seed: [UInt8](repeating: 1, count: 31)))
    }
}

final class SHA256Tests: XCTestCase {
    func test_sha256_matchesFIPS180Examples() {
        XCTAssertEqual(Hex.encode(SHA256.hash("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Hex.encode(SHA256.hash("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// FIPS 180-2's two-block example, given in uneven pieces, and a million "a".
    func test_hasher_inPieces_matchesTheOneShotDigest() {
        let message = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        let hasher = SHA256.Hasher()
        for piece in [0..<1, 1..<1, 1..<20, 20..<message.count] { hasher.update(message[piece]) }
        XCTAssertEqual(Hex.encode(hasher.finalize()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = SHA256.Hasher()
        let thousand = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000)
        for _ in 0..<1_000 { million.update(thousand) }
        XCTAssertEqual(Hex.encode(million.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

final class AESGCMStreamTests: XCTestCase {
    /// One key set up once gives exactly what the one-shot AES-GCM gives,
    /// message after message, and refuses a changed tag, nonce or AD.
    func test_stream_matchesOneShot_andRefusesTampering() throws {
        let key = SecretBytes((0..<32).map { UInt8($0) })
        let stream = try AESGCMStream(key: key)
        for (index, length) in [0, 1, 15, 16, 17, 256, 4_099].enumerated() {
            let nonce = [UInt8](repeating: UInt8(index), count: 12)
            let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
            let ad: [UInt8] = index % 2 == 0 ? [] : [1, 2, 3, UInt8(index)]
            var ciphertext = [UInt8](repeating: 0, count: length)
            var tag = [UInt8](repeating: 0, count: 16)
            try key.withUnsafeBytes { k in
                try nonce.withUnsafeBytes { n in
                    try plaintext.withUnsafeBytes { p in
                        try ad.withUnsafeBytes { a in
                            try ciphertext.withUnsafeMutableBytes { c in
                                try tag.withUnsafeMutableBytes { t in
                                    try AESGCM.seal(key: k, nonce: n, plaintext: p, associatedData: a, ciphertext: c, tag: t)
                                }
                            }
                        }
                    }
                }
            }
            let box = try stream.seal(nonce: nonce, plaintext: plaintext, associatedData: ad)
            XCTAssertEqual(box, ciphertext + tag, "length \(length)")
            XCTAssertEqual(try stream.open(nonce: nonce, box: box, associatedData: ad), plaintext)
            var altered = box
            altered[altered.count - 1] ^= 1
            XCTAssertThrowsError(try stream.open(nonce: nonce, box: altered, associatedData: ad))
            XCTAssertThrowsError(try stream.open(nonce: [UInt8](repeating: 0xEE, count: 12), box: box, associatedData: ad))
            XCTAssertThrowsError(try stream.open(nonce: nonce, box: box, associatedData: ad + [9]))
        }
    }
}
