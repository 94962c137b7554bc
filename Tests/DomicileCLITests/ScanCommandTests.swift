@testable import domicile
import DomicileModel
import DomicileTestSupport
import Foundation
import XCTest

/// `domicile scan`: the scanner finds every form of every canary once,
/// wherever it sits in a file (chunk boundaries included), as a plain search
/// would; the command reports findings by canary and form, never by value,
/// and its signed report verifies only with the signer's trusted keys.
final class ScanCommandTests: XCTestCase {
    let email = "Anna.Schmidt@Example.de"
    let vector: [Double] = [0.125, -0.5, 0.75, 0.0625, 0.3, -0.2]

    /// Every offset where `needle` starts in `haystack`: the reference.
    static func naive(_ needle: [UInt8], in haystack: [UInt8]) -> [Int] {
        guard haystack.count >= needle.count else { return [] }
        return (0...(haystack.count - needle.count)).filter { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    func test_theScanner_findsWhatAPlainSearchFinds_inEveryChunking() throws {
        var random = SeededRandom(seed: 20261130)
        let needles = CanaryScanner.forms(ofIdentifier: .email, email, canary: "identifiers[0]")
            + CanaryScanner.forms(ofVector: vector, canary: "vectors[0]")
            + CanaryScanner.forms(ofFeature: .number(42), canary: "features[0]")
        let scanner = CanaryScanner(needles)
        let directory = TemporaryDirectory("domicile-scan-unit")
        for round in 0..<40 {
            // Random bytes from a small alphabet (so prefixes collide), with needles planted at random places.
            var haystack = (0..<Int.random(in: 0...3_000, using: &random)).map { _ in UInt8.random(in: 0...3, using: &random) }
            for _ in 0..<Int.random(in: 0...6, using: &random) {
                let needle = scanner.needles.randomElement(using: &random)!.bytes
                let at = Int.random(in: 0...haystack.count, using: &random)
                haystack.insert(contentsOf: needle, at: at)
            }
            var expected: [CanaryScanner.Match] = []
            for (index, needle) in scanner.needles.enumerated() {
                expected += Self.naive(needle.bytes, in: haystack).map { CanaryScanner.Match(offset: $0, needle: index) }
            }
            let sort = { (a: CanaryScanner.Match, b: CanaryScanner.Match) in (a.offset, a.needle) < (b.offset, b.needle) }
            let file = directory.file("haystack-\(round)")
            try Data(haystack).write(to: URL(fileURLWithPath: file))
            for chunk in [1, 7, 64, 1_000, 1 << 20] {
                let scan = try scanner.scan(fileAt: file, chunkBytes: chunk)
                XCTAssertEqual(scan.matches.sorted(by: sort), expected.sorted(by: sort), "round \(round), chunks of \(chunk)")
                XCTAssertEqual(scan.byteCount, haystack.count)
            }
        }
    }

    func test_theForms_coverTheNormalizedAndEncodedIdentifier_andTheVectorsBinaryRuns() {
        let forms = Dictionary(CanaryScanner.forms(ofIdentifier: .email, email, canary: "identifiers[0]").map { ($0.form, $0.bytes) },
                               uniquingKeysWith: { first, _ in first })
        XCTAssertEqual(forms["normalized"], Array("anna.schmidt@example.de".utf8))
        XCTAssertEqual(forms["base64"], Array(Base64.encode(Array("anna.schmidt@example.de".utf8)).utf8))
        let floats = CanaryScanner.forms(ofVector: vector, canary: "vectors[0]").filter { $0.form.hasPrefix("float32le") }
        XCTAssertEqual(floats.count, vector.count - CanaryScanner.floatWindow + 1)
        XCTAssertEqual(floats.first?.bytes, vector.prefix(4).flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) })
        // Forms too short to scan are set aside, not searched (they would match by chance).
        let short = CanaryScanner([CanaryScanner.Needle(bytes: [1, 2, 3], canary: "features[0]", form: "text")])
        XCTAssertEqual(short.skipped.count, 1)
        XCTAssertTrue(short.needles.isEmpty)
    }

    func test_theCommand_reportsFindingsByCanaryAndForm_neverByValue_andItsSignedReportVerifies() throws {
        let directory = TemporaryDirectory("domicile-scan-command")
        let data = directory.file("data")
        try FileManager.default.createDirectory(atPath: data + "/nested", withIntermediateDirectories: true)
        let floats = vector.prefix(5).flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) }
        try Data([0, 1, 2] + Array("prefix anna.schmidt@example.de suffix".utf8)).write(to: URL(fileURLWithPath: data + "/node.sqlite-wal"))
        try Data([9, 9] + floats + [9]).write(to: URL(fileURLWithPath: data + "/nested/snapshot.bin"))
        try Data("nothing to see".utf8).write(to: URL(fileURLWithPath: data + "/clean.log"))
        let canaries = directory.file("canaries.json")
        try Data("""
            {"identifiers":[{"kind":"email","value":"\(email)","label":"anna"}],
             "features":[{"value":"velvet-slippers-42","label":"last_category"}],
             "vectors":[{"values":[\(vector.map { "\($0)" }.joined(separator: ","))],"label":"anna's embedding"}]}
            """.utf8).write(to: URL(fileURLWithPath: canaries))

        let found = try Binary.run(["scan", data, "--canaries", canaries])
        XCTAssertEqual(found.status, 1, found.stderr)
        XCTAssertTrue(found.stderr.contains("found, in nested/snapshot.bin, node.sqlite-wal"), found.stderr)
        let report = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(found.stdout.utf8)) as? [String: Any])?["report"] as? [String: Any])
        let findings = try XCTUnwrap(report["findings"] as? [[String: Any]])
        XCTAssertEqual(Set(findings.map { "\($0["file"]!) \($0["canary"]!) \($0["form"]!) \($0["offset"]!)" }),
                       ["node.sqlite-wal identifiers[0] normalized 10", "nested/snapshot.bin vectors[0] float32le[0...3] 2",
                        "nested/snapshot.bin vectors[0] float32le[1...4] 6"])
        XCTAssertEqual(report["clean"] as? Bool, false)
        XCTAssertEqual((report["files"] as? [[String: Any]])?.count, 3)
        for value in ["schmidt", "velvet", "0.125"] { XCTAssertFalse(found.stdout.contains(value), "the report shows a canary's value") }

        unlink(data + "/node.sqlite-wal")
        unlink(data + "/nested/snapshot.bin")
        let clean = try Binary.run(["scan", data, "--canaries", canaries])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        XCTAssertTrue(clean.stderr.contains("none found"), clean.stderr)

        // Signed with a node's key, the report verifies with that node's keys only, and not once edited.
        let master = directory.file("master.key")
        try Binary.run(["keys", "generate-master-key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            .write(toFile: master, atomically: true, encoding: .utf8)
        chmod(master, 0o600)
        for node in ["eu-1", "eu-2"] {
            let created = try Binary.run(["keys", "init", "--keyring", directory.file("\(node).keyring"), "--master-key-file", master,
                                          "--region", "eu", "--node", node])
            XCTAssertEqual(created.status, 0, created.stderr)
            let keys = try Binary.run(["keys", "export-public", "--keyring", directory.file("\(node).keyring"), "--master-key-file", master])
            try keys.stdout.write(toFile: directory.file("\(node)-keys.json"), atomically: true, encoding: .utf8)
        }
        let signedFile = directory.file("report.json")
        let signed = try Binary.run(["scan", data, "--canaries", canaries, "--out", signedFile, "--sign",
                                     "--keyring", directory.file("eu-1.keyring"), "--master-key-file", master])
        XCTAssertEqual(signed.status, 0, signed.stderr)
        let verified = try Binary.run(["scan", "verify", signedFile, "--trust", directory.file("eu-1-keys.json")])
        XCTAssertEqual(verified.status, 0, verified.stderr)
        XCTAssertTrue(verified.stdout.contains("signed by eu/eu-1: nothing found"), verified.stdout)
        XCTAssertEqual(try Binary.run(["scan", "verify", signedFile, "--trust", directory.file("eu-2-keys.json")]).status, 1)
        let edited = try String(contentsOfFile: signedFile, encoding: .utf8).replacingOccurrences(of: "\"clean\" : true", with: "\"clean\" : false")
        XCTAssertNotEqual(edited, try String(contentsOfFile: signedFile, encoding: .utf8))
        try edited.write(toFile: signedFile, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Binary.run(["scan", "verify", signedFile, "--trust", directory.file("eu-1-keys.json")]).status, 1)
    }
}
