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

/// The keyring's single writer: an exclusive advisory lock (`flock`) on
/// `{keyring}.lock`, held by a running node for its lifetime and by the keys
/// commands while they rewrite the file. A node rewrites its keyring on every
/// erasure (bucket keys); a command saving a copy it read earlier could
/// otherwise put a destroyed bucket key back on disk.
public final class KeyringLock: Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case inUse(path: String)
        case system(path: String, errno: Int32)

        public var description: String {
            switch self {
            case .inUse(let path):
                return "\(path) is in use by a running node or another keys command (its lock \(path).lock is held): stop the node first"
            case .system(let path, let code):
                return "\(path).lock: cannot lock: \(String(cString: strerror(code)))"
            }
        }
    }

    private let descriptor: Int32

    /// Takes the lock, or fails at once if another process (or another
    /// holder in this one) has it.
    public init(keyringPath path: String) throws(Failure) {
        let descriptor = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .system(path: path, errno: errno) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            throw code == EWOULDBLOCK ? .inUse(path: path) : .system(path: path, errno: code)
        }
        self.descriptor = descriptor
    }

    /// Lets another writer in (the descriptor closes with the lock).
    public func release() { flock(descriptor, LOCK_UN) }

    deinit { close(descriptor) }
}
