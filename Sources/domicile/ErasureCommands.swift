import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import Foundation

struct ErasureVerifyCommand: Command {
    static let path = ["erasure", "verify"]
    static let summary = "check an erasure certificate offline"
    static let help = """
        FILE --trust KEYS.json [--trust KEYS.json]...

        FILE is a certificate (docs/FORMATS.md, "Erasure certificate") or the answer of
        GET /v1/erasures/{id}, which carries one. Checks, offline: the origin's signature over the
        request (id, times, jurisdiction, expected regions and nodes, link hash, policy version) and
        over its completion (completed_at and the set of acks); each ack's signature, that it answers
        this request (id, request hash, link hash), and that every expected node of every expected
        region acked, once, and nobody else; and that every key is a trusted key of its region.
        KEYS.json is the output of `domicile keys export-public`, once per node or region. Exits 1
        if anything does not check out.
        """

    static let fileBytesMax = 1 << 20

    static func run(_ arguments: inout Arguments) async throws {
        var trustFiles: [String] = []
        while let file = try arguments.option("trust") { trustFiles.append(file) }
        guard let file = arguments.positional() else { throw CLIError.usage("give the certificate file") }
        try arguments.finish()
        // Without trusted keys anyone can sign a consistent certificate: it would prove nothing.
        guard !trustFiles.isEmpty else { throw CLIError.usage("give the trusted keys with --trust (domicile keys export-public)") }

        let certificate = try loadCertificate(file)
        var trusted = ErasureTrust()
        for trustFile in trustFiles {
            let (region, node, keys) = try loadTrustedKeys(trustFile)
            for key in keys { trusted.trust(key, region: region, node: node) }
        }
        let problems = certificate.problems(trusted: trusted)
        let request = certificate.request
        Output.line("request \(request.erasureID) from \(request.originRegion)/\(request.originNode) at \(request.requestedAt), "
                    + "due \(request.dueAt) (\(request.jurisdiction)), policy v\(request.policyVersion); expects "
                    + request.expectedRegions.map { "\($0): \(request.expectedNodes[$0]!.joined(separator: ", "))" }.joined(separator: "; "))
        for ack in certificate.acks {
            let counts = ack.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            Output.line("region \(ack.region) node \(ack.node) (scope \(ack.scope.rawValue)) erased at \(ack.erasedAt): \(counts); "
                        + "WAL \(ack.walTruncated ? "truncated" : "NOT truncated")")
        }
        guard problems.isEmpty else {
            throw CLIError.failed("certificate \(certificate.erasureID) INVALID: " + problems.map(\.description).joined(separator: "; "))
        }
        Output.line("certificate \(certificate.erasureID) valid: \(certificate.acks.count) signed ack(s) from every expected node, "
                    + "completed \(certificate.completedAt), every key trusted")
    }

    static func loadCertificate(_ file: String) throws -> ErasureCertificate {
        let bytes = try FileIO.read(file, byteCountMax: fileBytesMax)
        guard var object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw CLIError.failed("\(file): not a JSON object")
        }
        if let nested = object["certificate"] as? [String: Any] { object = nested }
        do {
            return try JSONDecoder().decode(ErasureCertificate.self, from: try JSONSerialization.data(withJSONObject: object))
        } catch let error as DecodingError {
            throw CLIError.failed("\(file): not an erasure certificate (\(error.localizedDescription))")
        } catch {
            throw CLIError.failed("\(file): \(error)")
        }
    }

    /// A node's keys as `keys export-public` prints them: they vouch for that node only.
    static func loadTrustedKeys(_ file: String) throws -> (RegionID, String, [Ed25519PublicKey]) {
        let bytes = try FileIO.read(file, byteCountMax: fileBytesMax)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
              let regionText = object["region"] as? String, let region = try? RegionID(regionText),
              let node = object["node"] as? String, !node.isEmpty,
              let entries = object["signing_keys"] as? [[String: Any]] else {
            throw CLIError.failed("\(file): expected the output of `domicile keys export-public`")
        }
        let keys = try entries.map { entry in
            guard let text = entry["public_key"] as? String, let raw = Base64.decode(text),
                  let key = try? Ed25519PublicKey(rawRepresentation: raw) else {
                throw CLIError.failed("\(file): a signing key is malformed")
            }
            return key
        }
        return (region, node, keys)
    }
}
