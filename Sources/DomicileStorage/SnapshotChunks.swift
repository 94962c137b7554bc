import CSQLite
import DomicileCrypto
import DomicileModel
import Glibc

/// A piece of a snapshot file on its way to a follower: `bytes` belong at
/// `offset` of the file.
public struct SnapshotChunk: Sendable, Equatable {
    public let offset: UInt64
    public let bytes: [UInt8]

    public init(offset: UInt64, bytes: [UInt8]) {
        self.offset = offset
        self.bytes = bytes
    }
}

/// Why a snapshot file could not be read, received or installed. A peer's
/// bad chunk is one of these, never a crash; it names offsets and sizes,
/// never content.
public enum SnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The announced size is 0 or beyond the receiver's bound.
    case sizeRefused(byteCount: UInt64, limit: UInt64)
    /// A chunk that is empty or longer than the bound.
    case chunkSizeRefused(byteCount: Int, limit: Int)
    /// A chunk not at the next offset: a gap, a repeat or a step back.
    case outOfOrder(expected: UInt64, received: UInt64)
    /// A chunk that would go past the announced size.
    case overflow(end: UInt64, byteCount: UInt64)
    /// `finish` before every announced byte arrived.
    case incomplete(received: UInt64, byteCount: UInt64)
    /// The bytes received are not the ones the sender hashed.
    case digestMismatch
    /// The file is not a sound SQLite database (quick_check's first finding).
    case notADatabase(reason: String)
    /// The receiver was finished, or abandoned after an earlier error.
    case closed
    case system(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .sizeRefused(let byteCount, let limit):
            return "a snapshot of \(byteCount) bytes is refused (1 to \(limit) bytes are accepted)"
        case .chunkSizeRefused(let byteCount, let limit):
            return "a snapshot chunk of \(byteCount) bytes is refused (1 to \(limit) bytes are accepted)"
        case .outOfOrder(let expected, let received):
            return "a snapshot chunk at offset \(received) is out of order (the next one is at \(expected))"
        case .overflow(let end, let byteCount):
            return "a snapshot chunk ending at \(end) goes past the snapshot's \(byteCount) bytes"
        case .incomplete(let received, let byteCount):
            return "the snapshot is incomplete: \(received) of \(byteCount) bytes received"
        case .digestMismatch:
            return "the snapshot's SHA-256 does not match the sender's"
        case .notADatabase(let reason):
            return "the snapshot is not a sound SQLite database: \(reason)"
        case .closed:
            return "the snapshot receiver is finished or was abandoned"
        case .system(let operation, let code):
            return "snapshot file: \(operation) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// The sender's side: a finished snapshot file (a `Database.backup`) read as
/// chunks of at most `chunkBytesMax` bytes, by offset (so a chunk lost on the
/// way can be sent again), with the SHA-256 of the whole file.
/// Sendable: every stored property is a constant, and `chunk(at:)` reads
/// with `pread` at an offset, which several threads may do at once.
public final class SnapshotChunkReader: @unchecked Sendable {
    public static let chunkBytesMaxDefault = 1 << 20

    public let path: String
    public let byteCount: UInt64
    public let chunkBytesMax: Int
    /// SHA-256 of the whole file, computed when the reader is made.
    public let digest: [UInt8]
    private let descriptor: Int32

    public init(path: String, chunkBytesMax: Int = SnapshotChunkReader.chunkBytesMaxDefault) throws(SnapshotError) {
        precondition(chunkBytesMax > 0, "a chunk holds at least one byte")
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .system(operation: "open", errno: errno) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            close(descriptor)
            throw .system(operation: "fstat", errno: code)
        }
        self.path = path
        self.descriptor = descriptor
        self.chunkBytesMax = chunkBytesMax
        self.byteCount = UInt64(info.st_size)
        let hasher = SHA256.Hasher()
        var offset: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: chunkBytesMax)
        do throws(SnapshotError) {
            while offset < byteCount {
                let count = try Self.read(descriptor, into: &buffer, at: offset, count: Int(min(UInt64(chunkBytesMax), byteCount - offset)))
                hasher.update(buffer[0..<count])
                offset += UInt64(count)
            }
        } catch {
            close(descriptor)
            throw error
        }
        digest = hasher.finalize()
    }

    deinit { close(descriptor) }

    public var chunkCount: Int { Int((byteCount + UInt64(chunkBytesMax) - 1) / UInt64(chunkBytesMax)) }

    /// The chunk that begins at `offset`; nil at or past the end.
    public func chunk(at offset: UInt64) throws(SnapshotError) -> SnapshotChunk? {
        guard offset < byteCount else { return nil }
        var buffer = [UInt8](repeating: 0, count: Int(min(UInt64(chunkBytesMax), byteCount - offset)))
        _ = try Self.read(descriptor, into: &buffer, at: offset, count: buffer.count)
        return SnapshotChunk(offset: offset, bytes: buffer)
    }

    /// Reads exactly `count` bytes at `offset` (the file is not growing or shrinking under us).
    private static func read(_ descriptor: Int32, into buffer: inout [UInt8], at offset: UInt64, count: Int) throws(SnapshotError) -> Int {
        var done = 0
        while done < count {
            let result = buffer.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw .system(operation: "pread", errno: errno)
            }
            guard result > 0 else { throw .system(operation: "pread (the file shrank)", errno: EIO) }
            done += result
        }
        return done
    }
}

/// The receiver's side: chunks accepted strictly in order into a new file
/// in `directory`, hashed as they arrive, until `finish` checks the digest
/// and that the file is a sound SQLite database. Any refusal abandons the
/// transfer: the partial file is removed and every later call is refused
/// (`.closed`); the sender starts again.
public final class SnapshotChunkWriter {
    public struct Limits: Sendable {
        public var chunkBytesMax = SnapshotChunkReader.chunkBytesMaxDefault
        /// The largest snapshot accepted (64 GiB by default).
        public var totalBytesMax: UInt64 = 1 << 36

        public init() {}
    }

    /// Files of this name in the data directory are transfers a crash cut
    /// short (`removeLeftovers`).
    public static let partialPrefix = "snapshot-"
    public static let partialSuffix = ".partial"

    public let path: String
    public let byteCount: UInt64
    public private(set) var receivedByteCount: UInt64 = 0
    private let limits: Limits
    private var descriptor: Int32
    private var hasher = SHA256.Hasher()
    private var state = State.receiving

    private enum State { case receiving, finished, abandoned }

    /// A receiver for a snapshot of `byteCount` bytes (announced by the sender).
    public init(directory: String, byteCount: UInt64, limits: Limits = Limits()) throws(SnapshotError) {
        guard byteCount > 0, byteCount <= limits.totalBytesMax else { throw .sizeRefused(byteCount: byteCount, limit: limits.totalBytesMax) }
        let name = Self.partialPrefix + Hex.encode(SecureRandom.bytes(8)) + Self.partialSuffix
        path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .system(operation: "open", errno: errno) }
        self.byteCount = byteCount
        self.limits = limits
    }

    deinit {
        if state == .receiving { abandon() }
    }

    /// Appends the next chunk; refuses (and abandons) anything else.
    public func append(_ chunk: SnapshotChunk) throws(SnapshotError) {
        guard state == .receiving else { throw .closed }
        do throws(SnapshotError) {
            guard (1...limits.chunkBytesMax).contains(chunk.bytes.count) else {
                throw SnapshotError.chunkSizeRefused(byteCount: chunk.bytes.count, limit: limits.chunkBytesMax)
            }
            guard chunk.offset == receivedByteCount else { throw SnapshotError.outOfOrder(expected: receivedByteCount, received: chunk.offset) }
            let end = receivedByteCount + UInt64(chunk.bytes.count)
            guard end <= byteCount else { throw SnapshotError.overflow(end: end, byteCount: byteCount) }
            try write(chunk.bytes)
            hasher.update(chunk.bytes)
            receivedByteCount = end
        } catch {
            abandon()
            throw error
        }
    }

    /// Checks that every byte arrived, that their SHA-256 is
    /// `expectedDigest`, makes the file durable, and checks it opens as a
    /// sound SQLite database (PRAGMA quick_check). Returns the file's path:
    /// the caller now owns it (`Database.restore` reads it; remove it after).
    public func finish(expectedDigest: [UInt8]) throws(SnapshotError) -> String {
        guard state == .receiving else { throw .closed }
        do throws(SnapshotError) {
            guard receivedByteCount == byteCount else { throw SnapshotError.incomplete(received: receivedByteCount, byteCount: byteCount) }
            guard ConstantTime.equals(hasher.finalize(), expectedDigest) else { throw SnapshotError.digestMismatch }
            guard fsync(descriptor) == 0 else { throw SnapshotError.system(operation: "fsync", errno: errno) }
            close(descriptor)
            descriptor = -1
            try Self.checkDatabase(path)
        } catch {
            abandon()
            throw error
        }
        state = .finished
        return path
    }

    /// Gives the transfer up: the partial file is removed.
    public func abandon() {
        guard state == .receiving else { return }
        state = .abandoned
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(path)
    }

    /// Removes what transfers cut short by a crash left in `directory`.
    public static func removeLeftovers(in directory: String) {
        guard let entries = opendir(directory) else { return }
        defer { closedir(entries) }
        var doomed: [String] = []
        while let entry = readdir(entries) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(partialPrefix) && name.hasSuffix(partialSuffix) { doomed.append(name) }
        }
        for name in doomed { unlink(directory + "/" + name) }
    }

    private func write(_ bytes: [UInt8]) throws(SnapshotError) {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system(operation: "write", errno: errno)
            }
            written += count
        }
    }

    /// Opens `path` read-only (a rollback-journal file, as `Database.backup`
    /// makes: nothing is created beside it) and runs quick_check. The digest
    /// already proved the bytes are the sender's; this refuses a sender's
    /// file that is not a database, or whose pages are not sound.
    public static func checkDatabase(_ path: String) throws(SnapshotError) {
        var connection: OpaquePointer?
        defer { sqlite3_close_v2(connection) }
        guard sqlite3_open_v2(path, &connection, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK, let connection else {
            throw .notADatabase(reason: connection.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open")
        }
        var statement: OpaquePointer?
        defer { sqlite3_finalize(statement) }
        guard sqlite3_prepare_v2(connection, "PRAGMA quick_check(1)", -1, &statement, nil) == SQLITE_OK else {
            throw .notADatabase(reason: String(cString: sqlite3_errmsg(connection)))
        }
        let code = sqlite3_step(statement)
        guard code == SQLITE_ROW else { throw .notADatabase(reason: String(cString: sqlite3_errmsg(connection))) }
        let finding = sqlite3_column_text(statement, 0).map { String(cString: $0) } ?? ""
        guard finding == "ok" else { throw .notADatabase(reason: finding) }
    }
}
