import DomicileCrypto
import DomicileModel
import DomicileStorage
import Foundation

/// `domicile scan`: the residency and erasure scanner — Domicile's own
/// data-security posture check. It looks for canaries (identifiers,
/// feature values, vectors) in every file of a data directory and prints a
/// report an auditor can keep, signed with the node's key when asked
/// (docs/TESTING.md, "Residency and erasure scans"; docs/FORMATS.md, "Scan
/// report").
struct ScanCommand: Command {
    static let path = ["scan"]
    static let summary = "look for identifiers, feature values and vectors in every file of a data directory"
    static let help = """
        DATA_DIR --canaries FILE [--sign \(KeyringOptions.help)] [--out REPORT]

        The canaries file is JSON: {"identifiers":[{"kind","value","label"?}], "features":[{"value": string or
        number,"label"?}], "vectors":[{"values":[numbers],"label"?}]}. Every regular file under DATA_DIR is read
        byte by byte (SQLite pages, WAL, free pages, logs, snapshots, keyrings), looking for each identifier raw,
        normalized, uppercase, base64, base64url, hex and UTF-16; each feature value as text, encoded, and as a
        binary double, float and integer; each vector as every run of 4 float or 2 double components and as text.
        The report names canaries by position and label, never by value. With --sign, the report is signed with
        the keyring's node signing key; `domicile scan verify` checks it.

        Exit status: 0 nothing found, 1 something found (or an error), 2 usage.

        \(KeyringOptions.masterKeyHelp)
        """

    static let canariesBytesMax = 64 << 20
    static let format = "domicile-scan/v1"

    static func run(_ arguments: inout Arguments) async throws {
        let canariesFile = try arguments.required("canaries")
        let out = try arguments.option("out")
        let sign = arguments.flag("sign")
        let keyring = sign ? try KeyringOptions(&arguments) : nil
        guard let directory = arguments.positional() else { throw CLIError.usage("give the data directory to scan") }
        try arguments.finish()

        let canaries = try Canaries.load(canariesFile)
        let scanner = CanaryScanner(canaries.needles)
        var files: [[String: Any]] = []
        var findings: [[String: Any]] = []
        for relative in try regularFiles(under: directory) {
            let scan = try scanner.scan(fileAt: (directory as NSString).appendingPathComponent(relative))
            files.append(["path": relative, "bytes": scan.byteCount, "sha256": Hex.encode(scan.sha256)])
            for match in scan.matches {
                let needle = scanner.needles[match.needle]
                var finding: [String: Any] = ["file": relative, "offset": match.offset, "canary": needle.canary, "form": needle.form]
                if let label = canaries.labels[needle.canary] { finding["label"] = label }
                findings.append(finding)
            }
        }
        let report: [String: Any] = [
            "format": format, "scanned_at": Timestamp.now.rfc3339, "data_dir": directory,
            "canaries": ["identifiers": canaries.counts.identifiers, "features": canaries.counts.features,
                         "vectors": canaries.counts.vectors, "forms": scanner.needles.count,
                         "forms_too_short": scanner.skipped.map { "\($0.canary) \($0.form)" }],
            "files": files, "findings": findings, "clean": findings.isEmpty,
        ]
        var document: [String: Any] = ["report": report]
        if let keyring {
            let (opened, _) = try keyring.load()
            guard let newest = opened.versions(of: .nodeSigning).max(by: { $0.version < $1.version }) else {
                throw CLIError.failed("the keyring holds no signing key")
            }
            let key = try Ed25519PrivateKey(seed: newest.material)
            document["signature"] = Base64.encode(key.signature(for: try canonical(report)))
            document["signed_by"] = ["region": opened.region.rawValue, "node": opened.node.rawValue,
                                     "public_key": Base64.encode(key.publicKey.rawRepresentation)]
        }
        let text = String(decoding: try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys,
                                                                                                    .withoutEscapingSlashes]),
                          as: UTF8.self)
        if let out { try FileIO.writeAtomically(Array((text + "\n").utf8), to: out, replacing: true) } else { Output.line(text) }
        let summary = "scanned \(files.count) files of \(directory) for \(scanner.needles.count) forms of "
            + "\(canaries.counts.identifiers + canaries.counts.features + canaries.counts.vectors) canaries"
        guard findings.isEmpty else {
            let where_ = Set(findings.compactMap { $0["file"] as? String }).sorted().joined(separator: ", ")
            throw CLIError.failed("\(summary): \(findings.count) found, in \(where_)")
        }
        FileHandle.standardError.write(Data("\(summary): none found\n".utf8))
    }

    /// The signed bytes: the report as JSON with sorted keys and no
    /// whitespace (it holds no floating-point number, so the encoding is
    /// one).
    static func canonical(_ report: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    /// Every regular file under `directory`, relative, sorted; symbolic links are not followed.
    static func regularFiles(under directory: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError.failed("\(directory): not a directory")
        }
        guard let walker = FileManager.default.enumerator(atPath: directory) else { throw CLIError.failed("\(directory): cannot be listed") }
        var files: [String] = []
        while let relative = walker.nextObject() as? String {
            var status = stat()
            guard lstat((directory as NSString).appendingPathComponent(relative), &status) == 0 else { continue }
            if status.st_mode & S_IFMT == S_IFREG { files.append(relative) }
        }
        return files.sorted()
    }
}

/// The canaries file, read and turned into the scanner's needles.
struct Canaries {
    var needles: [CanaryScanner.Needle] = []
    var labels: [String: String] = [:]
    var counts = (identifiers: 0, features: 0, vectors: 0)

    private struct File: Decodable {
        struct IdentifierEntry: Decodable {
            let kind: IdentifierKind
            let value: String
            let label: String?
        }
        struct FeatureEntry: Decodable {
            let value: FeatureCanary
            let label: String?
        }
        struct VectorEntry: Decodable {
            let values: [Double]
            let label: String?
        }

        let identifiers: [IdentifierEntry]?
        let features: [FeatureEntry]?
        let vectors: [VectorEntry]?
    }

    static func load(_ file: String) throws -> Canaries {
        let bytes = try FileIO.read(file, byteCountMax: ScanCommand.canariesBytesMax)
        let decoded: File
        do { decoded = try JSONDecoder().decode(File.self, from: Data(bytes)) } catch {
            throw CLIError.failed("\(file): not a canaries file (\(error.localizedDescription))")
        }
        var canaries = Canaries()
        for (index, entry) in (decoded.identifiers ?? []).enumerated() where !entry.value.isEmpty {
            canaries.add("identifiers[\(index)]", label: entry.label) { CanaryScanner.forms(ofIdentifier: entry.kind, entry.value, canary: $0) }
            canaries.counts.identifiers += 1
        }
        for (index, entry) in (decoded.features ?? []).enumerated() {
            canaries.add("features[\(index)]", label: entry.label) { CanaryScanner.forms(ofFeature: entry.value, canary: $0) }
            canaries.counts.features += 1
        }
        for (index, entry) in (decoded.vectors ?? []).enumerated() {
            guard entry.values.count >= 2 else { throw CLIError.failed("\(file): vectors[\(index)] has fewer than 2 components") }
            canaries.add("vectors[\(index)]", label: entry.label) { CanaryScanner.forms(ofVector: entry.values, canary: $0) }
            canaries.counts.vectors += 1
        }
        return canaries
    }

    private mutating func add(_ canary: String, label: String?, forms: (String) -> [CanaryScanner.Needle]) {
        needles += forms(canary)
        labels[canary] = label
    }
}

/// `domicile scan verify`: checks a signed scan report offline.
struct ScanVerifyCommand: Command {
    static let path = ["scan", "verify"]
    static let summary = "check a signed scan report offline"
    static let help = """
        REPORT --trust KEYS.json [--trust KEYS.json]...

        Checks that the report is signed by a trusted signing key of the node it names (the output of
        `domicile keys export-public` for that node), and prints whether it found anything.
        """

    static func run(_ arguments: inout Arguments) async throws {
        var trustFiles: [String] = []
        while let file = try arguments.option("trust") { trustFiles.append(file) }
        guard let file = arguments.positional() else { throw CLIError.usage("give the report file") }
        try arguments.finish()
        guard !trustFiles.isEmpty else { throw CLIError.usage("give the trusted keys with --trust (domicile keys export-public)") }
        let bytes = try FileIO.read(file, byteCountMax: 1 << 30)
        guard let document = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
              let report = document["report"] as? [String: Any] else { throw CLIError.failed("\(file): not a scan report") }
        guard let signature = (document["signature"] as? String).flatMap(Base64.decode),
              let signer = document["signed_by"] as? [String: Any], let node = signer["node"] as? String,
              let region = (signer["region"] as? String).flatMap({ try? RegionID($0) }),
              let key = (signer["public_key"] as? String).flatMap(Base64.decode).flatMap({ try? Ed25519PublicKey(rawRepresentation: $0) }) else {
            throw CLIError.failed("\(file): the report is not signed")
        }
        var trusted = false
        for trustFile in trustFiles {
            let (trustedRegion, trustedNode, keys) = try ErasureVerifyCommand.loadTrustedKeys(trustFile)
            trusted = trusted || (trustedRegion == region && trustedNode == node
                                  && keys.contains { $0.rawRepresentation == key.rawRepresentation })
        }
        guard trusted else { throw CLIError.failed("\(file): signed by a key that is not a trusted key of \(region)/\(node)") }
        guard key.isValidSignature(signature, for: try ScanCommand.canonical(report)) else {
            throw CLIError.failed("\(file): the signature does not match the report")
        }
        let findings = (report["findings"] as? [Any])?.count ?? 0
        Output.line("report of \(report["data_dir"] ?? "?") at \(report["scanned_at"] ?? "?") signed by \(region)/\(node): "
                    + (findings == 0 ? "nothing found" : "\(findings) finding(s)"))
    }
}
