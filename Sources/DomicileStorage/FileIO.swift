import Foundation

/// Small, durable file operations for configuration-like files (keyrings,
/// certificates): whole-file reads with a size bound, atomic replacement.
public enum FileIO {
    public enum Failure: Error, CustomStringConvertible {
        case notFound(path: String)
        case tooLarge(path: String, limit: Int)
        case exists(path: String)
        case system(path: String, operation: String, errno: Int32)
        /// A secret (master key, keyring) that group or others may read.
        case tooOpen(path: String, mode: mode_t)

        public var description: String {
            switch self {
            case .notFound(let path): return "\(path): no such file"
            case .tooLarge(let path, let limit): return "\(path): larger than \(limit) bytes"
            case .exists(let path): return "\(path) already exists (pass --force to replace it)"
            case .system(let path, let operation, let code):
                return "\(path): \(operation) failed: \(String(cString: strerror(code)))"
            case .tooOpen(let path, let mode):
                return "permissions \(FileIO.octal(mode)) for '\(path)' are too open: it holds a secret and must not be "
                    + "accessible by group or others (chmod 600 '\(path)')"
            }
        }
    }

    public static func read(_ path: String, byteCountMax: Int) throws(Failure) -> [UInt8] {
        let descriptor = try openForReading(path)
        defer { close(descriptor) }
        return try readAll(descriptor, path: path, byteCountMax: byteCountMax)
    }

    /// Reads a file holding a secret, refusing it (like ssh does a private
    /// key) when its mode lets group or others read, write or execute it.
    public static func readSecret(_ path: String, byteCountMax: Int) throws(Failure) -> [UInt8] {
        let descriptor = try openForReading(path)
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .system(path: path, operation: "fstat", errno: errno) }
        let permissions = info.st_mode & 0o777
        guard permissions & 0o077 == 0 else { throw .tooOpen(path: path, mode: permissions) }
        return try readAll(descriptor, path: path, byteCountMax: byteCountMax)
    }

    /// Four octal digits, as `ls` and `chmod` spell a mode: 0644.
    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private static func openForReading(_ path: String) throws(Failure) -> Int32 {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? .notFound(path: path) : .system(path: path, operation: "open", errno: errno)
        }
        return descriptor
    }

    private static func readAll(_ descriptor: Int32, path: String, byteCountMax: Int) throws(Failure) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system(path: path, operation: "read", errno: errno)
            }
            if count == 0 { return bytes }
            guard bytes.count + count <= byteCountMax else { throw .tooLarge(path: path, limit: byteCountMax) }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it
    /// over `path` and fsyncs the directory: readers see the old or the new
    /// file, never a torn one, and the new one survives a crash.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600,
                                       replacing: Bool) throws(Failure) {
        if !replacing && access(path, F_OK) == 0 { throw .exists(path: path) }
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw .system(path: temporary, operation: "open", errno: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(descriptor)
                unlink(temporary)
                throw .system(path: temporary, operation: "write", errno: code)
            }
            written += count
        }
        guard fsync(descriptor) == 0 else {
            let code = errno
            close(descriptor)
            unlink(temporary)
            throw .system(path: temporary, operation: "fsync", errno: code)
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw .system(path: path, operation: "rename", errno: code)
        }
        let directory = (path as NSString).deletingLastPathComponent
        let directoryDescriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }
}
