import DomicileModel
import XCTest

final class PIDTests: XCTestCase {
    let digest = (0..<32).map { UInt8($0) }

    func test_pid_formatsCanonicalText() throws {
        let pid = PID(keyVersion: 3, region: try RegionID("eu"), digest: digest)
        XCTAssertEqual(pid.rawValue, "psn:v3:eu:" + Base64.encodeURL(digest))
        XCTAssertEqual(pid.digest, digest)
    }

    func test_pid_parsesWhatItFormats() throws {
        let pid = PID(keyVersion: 12, region: try RegionID("br"), digest: digest)
        let parsed = try PID(parsing: pid.rawValue)
        XCTAssertEqual(parsed, pid)
        XCTAssertEqual(parsed.keyVersion, 12)
        XCTAssertEqual(parsed.region.rawValue, "br")
    }

    func test_pid_rejectsMalformedText() throws {
        let valid = PID(keyVersion: 1, region: try RegionID("eu"), digest: digest).rawValue
        let encoded = Base64.encodeURL(digest)
        for text in ["", "psn", "psn:v1:eu", "xsn:v1:eu:\(encoded)", "psn:1:eu:\(encoded)", "psn:v0:eu:\(encoded)",
                     "psn:v01:eu:\(encoded)", "psn:v-1:eu:\(encoded)", "psn:v1:EU:\(encoded)", "psn:v1::\(encoded)",
                     "psn:v1:eu:\(encoded)=", "psn:v1:eu:\(encoded.dropLast())", "psn:v1:eu:\(encoded)AA",
                     "psn:v1:eu:" + String(repeating: "+", count: 43), valid + ":x", "psn:v99999999999:eu:\(encoded)"] {
            XCTAssertThrowsError(try PID(parsing: text), text) { error in
                guard case ModelError.invalidPID = error else { return XCTFail("\(error)") }
            }
        }
    }

    func test_region_acceptsOnlyShortLowercaseIDs() {
        for good in ["eu", "us", "br", "apac2", "a"] { XCTAssertNoThrow(try RegionID(good), good) }
        for bad in ["", "EU", "2eu", "e-u", "eu ", String(repeating: "a", count: 17), "é"] {
            XCTAssertThrowsError(try RegionID(bad), bad)
        }
    }

    func test_nodeName_validates() {
        XCTAssertNoThrow(try NodeName("eu-1"))
        XCTAssertNoThrow(try NodeName("node_2.eu"))
        XCTAssertThrowsError(try NodeName("-eu"))
        XCTAssertThrowsError(try NodeName("EU-1"))
        XCTAssertThrowsError(try NodeName(""))
    }
}

final class Base64Tests: XCTestCase {
    // RFC 4648 section 10.
    let vectors: [(String, String)] = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
                                       ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]

    func test_base64_matchesRFC4648Vectors() {
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8))
            XCTAssertEqual(Base64.encodeURL(Array(plain.utf8)), encoded.replacingOccurrences(of: "=", with: ""))
            XCTAssertEqual(Base64.decodeURL(encoded.replacingOccurrences(of: "=", with: "")), Array(plain.utf8))
        }
    }

    func test_base64_roundTripsRandomBytes() {
        var generator = SystemRandomNumberGenerator()
        for count in 0..<70 {
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            XCTAssertEqual(Base64.decode(Base64.encode(bytes)), bytes)
            XCTAssertEqual(Base64.decodeURL(Base64.encodeURL(bytes)), bytes)
        }
    }

    func test_base64_rejectsNonCanonicalInput() {
        XCTAssertNil(Base64.decode("Zg="))       // wrong padding
        XCTAssertNil(Base64.decode("Zh=="))      // non-zero trailing bits
        XCTAssertNil(Base64.decode("Zm9v\n"))    // outside the alphabet
        XCTAssertNil(Base64.decodeURL("Zm9v+"))  // standard alphabet in url form
        XCTAssertNil(Base64.decodeURL("Z"))      // impossible length
    }

    func test_hex_roundTrips() {
        XCTAssertEqual(Hex.encode([0x00, 0xAB, 0xFF]), "00abff")
        XCTAssertEqual(Hex.decode("00ABff"), [0x00, 0xAB, 0xFF])
        XCTAssertNil(Hex.decode("abc"))
        XCTAssertNil(Hex.decode("zz"))
    }
}

final class BinaryCodingTests: XCTestCase {
    func test_binaryCoding_roundTripsFields() throws {
        var writer = BinaryWriter()
        writer.write(UInt8(7))
        writer.write(UInt16(0xBEEF))
        writer.write(UInt32(0xDEADBEEF))
        writer.write(Int64(-5))
        writer.write16(prefixed: [1, 2, 3])
        writer.write8(string: "eu")
        XCTAssertEqual(Array(writer.bytes.prefix(3)), [7, 0xBE, 0xEF], "big-endian")

        var reader = BinaryReader(writer.bytes, what: "test")
        XCTAssertEqual(try reader.readUInt8(), 7)
        XCTAssertEqual(try reader.readUInt16(), 0xBEEF)
        XCTAssertEqual(try reader.readUInt32(), 0xDEADBEEF)
        XCTAssertEqual(try reader.readInt64(), -5)
        XCTAssertEqual(try reader.read16Prefixed(), [1, 2, 3])
        XCTAssertEqual(try reader.read8String(), "eu")
        XCTAssertTrue(reader.isAtEnd)
        XCTAssertThrowsError(try reader.readUInt8())
    }

    func test_binaryReader_rejectsLengthsPastTheEnd() {
        var reader = BinaryReader([0x00, 0x05, 1, 2], what: "test")
        XCTAssertThrowsError(try reader.read16Prefixed()) { XCTAssertEqual($0 as? ModelError, .truncated(what: "test")) }
    }
}
