import DomicileCrypto
import DomicileModel
import DomicileStorage
import Foundation

/// The principals file: names, roles and the SHA-256 of each bearer token.
/// Tokens themselves are never stored; a request's token is hashed and
/// looked up. (A lookup by digest leaks nothing useful by its timing: the
/// attacker would learn about SHA-256 outputs, not about tokens.)
public struct Principals: Sendable {
    private let byDigest: [String: Principal]

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    struct Entry: Decodable {
        let name: String
        let tokenSha256: String
        let roles: [String]
    }

    struct Document: Decodable {
        let principals: [Entry]
    }

    public init(json bytes: [UInt8]) throws(Invalid) {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        guard let document = try? decoder.decode(Document.self, from: Data(bytes)) else {
            throw Invalid(description: "principals: expected {\"principals\":[{\"name\",\"token_sha256\",\"roles\"}]}")
        }
        var byDigest: [String: Principal] = [:]
        for (index, entry) in document.principals.enumerated() {
            let field = "principals[\(index)]"
            guard !entry.name.isEmpty, entry.name.utf8.count <= 64,
                  entry.name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw Invalid(description: "\(field).name: 1-64 printable characters without spaces")
            }
            let digest = entry.tokenSha256.lowercased()
            guard digest.utf8.count == 64, Hex.decode(digest) != nil else {
                throw Invalid(description: "\(field).token_sha256: must be 64 hex digits (SHA-256 of the token)")
            }
            var roles = Set<Role>()
            for name in entry.roles {
                guard let role = Role(rawValue: name) else {
                    throw Invalid(description: "\(field).roles: unknown role '\(name)' (expected \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                roles.insert(role)
            }
            guard byDigest[digest] == nil else { throw Invalid(description: "\(field).token_sha256: the same token is listed twice") }
            byDigest[digest] = Principal(name: entry.name, roles: roles)
        }
        self.byDigest = byDigest
    }

    public static func load(path: String) throws -> Principals {
        try Principals(json: try FileIO.read(path, byteCountMax: 1 << 20))
    }

    /// The principal a bearer token belongs to, or nil.
    public func authenticate(token: String) -> Principal? {
        guard !token.isEmpty, token.utf8.count <= 512 else { return nil }
        return byDigest[Hex.encode(SHA256.hash(token))]
    }
}
