import DomicileCrypto
import DomicileModel
import XCTest

final class KeyringTests: XCTestCase {
    let eu = try! RegionID("eu")
    let us = try! RegionID("us")
    let master = try! MasterKey(base64: MasterKey.generateBase64())

    func test_keyring_generatesEveryKindAtVersionOne() throws {
        let keyring = Keyring.generate(region: eu, node: try NodeName("eu-1"), createdAt: 100)
        for kind in KeyKind.allCases {
            XCTAssertEqual(try keyring.primary(kind).version, 1)
            XCTAssertEqual(try keyring.primary(kind).material.count, 32)
        }
    }

    func test_sealedKeyring_roundTripsAndRefusesWrongMasterKey() throws {
        var keyring = Keyring.generate(region: eu, node: try NodeName("eu-1"), createdAt: 100)
        keyring.rotate(.data, createdAt: 200)
        let sealed = keyring.sealed(with: master)
        XCTAssertEqual(Array(sealed.prefix(4)), Array("DMKR".utf8))

        let opened = try Keyring.unseal(sealed, with: master)
        XCTAssertEqual(opened.region, eu)
        XCTAssertEqual(opened.node.rawValue, "eu-1")
        XCTAssertEqual(opened.versions(of: .data).map(\.version), [2, 1])
        XCTAssertEqual(try opened.primary(.data).createdAt, 200)
        XCTAssertEqual(try opened.primary(.pseudonym).material.bytesForSealing,
                       try keyring.primary(.pseudonym).material.bytesForSealing)

        let other = try MasterKey(base64: MasterKey.generateBase64())
        XCTAssertThrowsError(try Keyring.unseal(sealed, with: other)) {
            XCTAssertEqual($0 as? KeyringError, .wrongMasterKey)
            XCTAssertTrue("\($0)".contains("master key"))
        }
        var tampered = sealed
        tampered[40] ^= 1
        XCTAssertThrowsError(try Keyring.unseal(tampered, with: master)) { XCTAssertEqual($0 as? KeyringError, .wrongMasterKey) }
        XCTAssertThrowsError(try Keyring.unseal(Array("not a keyring".utf8), with: master)) {
            XCTAssertEqual($0 as? KeyringError, .notAKeyring)
        }
    }

    func test_sealedKeyring_containsNoKeyBytesInTheClear() throws {
        let keyring = Keyring.generate(region: eu, node: try NodeName("eu-1"), createdAt: 100)
        let sealed = keyring.sealed(with: master)
        for entry in keyring.entries {
            let material = entry.material.bytesForSealing
            let found = (0...(sealed.count - 8)).contains { Array(sealed[$0..<($0 + 8)]) == Array(material.prefix(8)) }
            XCTAssertFalse(found, "\(entry.kind) key visible in the sealed file")
        }
    }

    func test_masterKey_mustBe32BytesOfBase64() {
        XCTAssertThrowsError(try MasterKey(base64: "not base64!"))
        XCTAssertThrowsError(try MasterKey(base64: Base64.encode([UInt8](repeating: 1, count: 16))))
        XCTAssertNoThrow(try MasterKey(base64: " " + Base64.encode([UInt8](repeating: 1, count: 32)) + "\n"))
    }

    func test_inheritedKeyring_sharesRegionKeysOnlyWithinTheRegion() throws {
        let eu1 = Keyring.generate(region: eu, node: try NodeName("eu-1"), createdAt: 1)
        let eu2 = Keyring.generate(region: eu, node: try NodeName("eu-2"), createdAt: 2, inheriting: eu1)
        let us1 = Keyring.generate(region: us, node: try NodeName("us-1"), createdAt: 3, inheriting: eu1)
        func material(_ keyring: Keyring, _ kind: KeyKind) throws -> [UInt8] { try keyring.primary(kind).material.bytesForSealing }

        for kind in KeyKind.allCases {
            switch kind.scope {
            case .federation:
                XCTAssertEqual(try material(eu1, kind), try material(eu2, kind), "\(kind)")
                XCTAssertEqual(try material(eu1, kind), try material(us1, kind), "\(kind)")
            case .region:
                XCTAssertEqual(try material(eu1, kind), try material(eu2, kind), "\(kind)")
                XCTAssertNotEqual(try material(eu1, kind), try material(us1, kind), "\(kind)")
            case .node:
                XCTAssertNotEqual(try material(eu1, kind), try material(eu2, kind), "\(kind)")
            }
        }
    }

    func test_pseudonymizer_isDeterministicPerKeyAndVersioned() throws {
        var keyring = Keyring.generate(region: eu, node: try NodeName("eu-1"), createdAt: 1)
        let alice = try Identifier(kind: .email, raw: "Alice@Example.com")
        let aliceAgain = try Identifier(kind: .email, raw: " alice@example.COM ")
        let before = try keyring.pseudonymizers()
        XCTAssertEqual(before.current.pid(for: alice), before.current.pid(for: aliceAgain))
        XCTAssertTrue(before.current.pid(for: alice).rawValue.hasPrefix("psn:v1:eu:"))

        keyring.rotate(.pseudonym, createdAt: 2)
        let after = try keyring.pseudonymizers()
        let candidates = after.candidates(for: alice)
        XCTAssertEqual(candidates.map(\.keyVersion), [2, 1], "lookups try the newest key first, then older ones")
        XCTAssertEqual(candidates[1], before.current.pid(for: alice), "old pids stay resolvable")
        XCTAssertNotEqual(candidates[0].digest, candidates[1].digest)

        let otherRegion = Keyring.generate(region: us, node: try NodeName("us-1"), createdAt: 1)
        XCTAssertNotEqual(try otherRegion.pseudonymizers().current.pid(for: alice).digest,
                          before.current.pid(for: alice).digest, "each region has its own key")
    }

    func test_pseudonym_isTheHMACOfKindTaggedInput() throws {
        let keyBytes = [UInt8](repeating: 7, count: 32)
        let pseudonymizer = Pseudonymizer(region: eu, keyVersion: 1, key: try HMACKey(key: keyBytes))
        let identifier = try Identifier(kind: .phone, raw: "+14155550100")
        let expected = try HMACKey(key: keyBytes).authenticate([IdentifierKind.phone.tag, 0] + Array("+14155550100".utf8))
        XCTAssertEqual(pseudonymizer.pid(for: identifier).digest, expected)
    }

    func test_links_matchAcrossRegionsThatShareTheFederationKey() throws {
        let eu1 = Keyring.generate(region: eu, node: try NodeName("eu-1"), createdAt: 1)
        let us1 = Keyring.generate(region: us, node: try NodeName("us-1"), createdAt: 1, inheriting: eu1)
        let bob = try Identifier(kind: .customerID, raw: "CRM-77")
        XCTAssertEqual(try eu1.linkKeys()[0].link(for: bob), try us1.linkKeys()[0].link(for: bob))
        XCTAssertNotEqual(try eu1.linkKeys()[0].link(for: bob), try eu1.pseudonymizers().current.pid(for: bob).digest,
                          "links and pids use different keys")
    }

    func test_signingKey_comesFromTheKeyring() throws {
        let keyring = Keyring.generate(region: eu, node: try NodeName("eu-1"), createdAt: 1)
        let signer = try keyring.signingKey()
        let signature = signer.signature(for: Array("certificate".utf8))
        XCTAssertTrue(signer.publicKey.isValidSignature(signature, for: Array("certificate".utf8)))
    }
}
