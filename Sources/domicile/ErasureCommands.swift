import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage
import Foundation

struct ErasureVerifyCommand: Command {
    static let path = ["erasure", "verify"]
    static let summary = "check an erasure certificate offline"
    static let help = """
        FILE [--trust KEYS.json]...

        FILE is a certificate ({"erasure_id","requested_at","completed_at","acks":[…]}) or the
        answer of GET /v1/erasures/{id}, which carries one. Checks every ack's Ed25519 signature
        over its canonical encoding (docs/FORMATS.md, "Erasure ack"). With --trust (the output of
        `domicile keys export-public`, once per node), each ack's key must also be a trusted
        key of its region. Exits 1 if anything does not check out.
        """

    static let fileBytesMax = 1 << 20

    static func run(_ arguments: inout Arguments) async throws {
        var trustFiles: [String] = []
        while let file = try arguments.option("trust") { trustFiles.append(file) }
        guard let file = arguments.positional() else { throw CLIError.usage("give the certificate file") }
        try arguments.finish()

        let certificate = try loadCertificate(file)
        var trusted: [RegionID: Set<Ed25519PublicKey>]?
        for trustFile in trustFiles {
            let (region, keys) = try loadTrustedKeys(trustFile)
            trusted = trusted ?? [:]
            trusted![region, default: []].formUnion(keys)
        }
        let problems = certificate.problems(trustedKeys: trusted)
        for ack in certificate.acks {
            let counts = ack.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            Output.line("region \(ack.region) node \(ack.node) erased at \(ack.erasedAt): \(counts)")
        }
        guard problems.isEmpty else {
            throw CLIError.failed("certificate \(certificate.erasureID) INVALID: " + problems.map(\.description).joined(separator: "; "))
        }
        Output.line("certificate \(certificate.erasureID) valid: \(certificate.acks.count) signed ack(s), completed \(certificate.completedAt)"
                    + (trusted == nil ? " (keys not checked against trusted keys: use --trust)" : ", every key trusted"))
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

    static func loadTrustedKeys(_ file: String) throws -> (RegionID, [Ed25519PublicKey]) {
        let bytes = try FileIO.read(file, byteCountMax: fileBytesMax)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
              let regionText = object["region"] as? String, let region = try? RegionID(regionText),
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
        return (region, keys)
    }
}
