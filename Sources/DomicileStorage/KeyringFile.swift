import DomicileCrypto
import Foundation

/// Where the master key comes from: the environment (`DOMICILE_MASTER_KEY`,
/// base64 of 32 bytes) or a key file holding the same base64 text.
public enum MasterKeySource: Sendable, Equatable {
    case environment
    case file(path: String)

    public static let fileByteCountMax = 1024

    public func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MasterKey {
        switch self {
        case .environment:
            guard let text = environment[MasterKey.environmentVariable], !text.isEmpty else {
                throw KeyringFile.Failure.noMasterKey
            }
            return try MasterKey(base64: text)
        case .file(let path):
            let bytes = try FileIO.readSecret(path, byteCountMax: Self.fileByteCountMax)
            return try MasterKey(base64: String(decoding: bytes, as: UTF8.self))
        }
    }
}

/// The sealed keyring on disk (format in docs/FORMATS.md). The file is only
/// ever written sealed, atomically, with mode 0600, and is refused when group
/// or others may access it (as the master key file is).
public enum KeyringFile {
    public static let byteCountMax = 1 << 20

    public enum Failure: Error, CustomStringConvertible {
        case noMasterKey

        public var description: String {
            "no master key: set \(MasterKey.environmentVariable) to the base64 of 32 random bytes "
                + "(`domicile keys generate-master-key` prints one) or name a master key file"
        }
    }

    public static func load(path: String, master: MasterKey) throws -> Keyring {
        try Keyring.unseal(try FileIO.readSecret(path, byteCountMax: byteCountMax), with: master)
    }

    public static func save(_ keyring: Keyring, path: String, master: MasterKey, replacing: Bool) throws {
        try FileIO.writeAtomically(keyring.sealed(with: master), to: path, mode: 0o600, replacing: replacing)
    }
}
