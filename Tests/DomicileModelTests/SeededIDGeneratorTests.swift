import DomicileModel
import XCTest

final class SeededIDGeneratorTests: XCTestCase {
    func test_seededIDGenerator_sameSeed_sameSequence() {
        let kinds = (0..<200).map { IDKind.allCases[$0 % IDKind.allCases.count] }
        let first = SeededIDGenerator(seed: 42)
        let second = SeededIDGenerator(seed: 42)
        XCTAssertEqual(kinds.map { first.next($0) }, kinds.map { second.next($0) })
    }

    func test_seededIDGenerator_givesDistinctIDs_ofTheDocumentedShape() {
        let generator = SeededIDGenerator(seed: 7)
        let ids = (0..<10_000).map { _ in generator.next(.consentReceipt) }
        XCTAssertEqual(Set(ids).count, ids.count)
        for id in ids.prefix(100) {
            XCTAssertTrue(id.hasPrefix("rc_"), id)
            XCTAssertEqual(id.utf8.count, 3 + 24, id)
            XCTAssertEqual(Hex.decode(String(id.dropFirst(3)))?.count, 12, id)
        }
        XCTAssertNotEqual(SeededIDGenerator(seed: 7).next(.erasure), SeededIDGenerator(seed: 8).next(.erasure))
    }

    func test_idKind_prefixes_areTheOnesClientsSee() {
        XCTAssertEqual(IDKind.allCases.map(\.rawValue), ["rc", "ch", "rl", "er", "ri"])
        XCTAssertEqual(IDKind.release.id(randomBytes: Array(0..<12)), "rl_000102030405060708090a0b")
    }
}
