import DomicileCrypto
import DomicileStorage
import Foundation

struct BenchSnapshotCommand: Command {
    static let path = ["bench", "snapshot"]
    static let summary = "benchmark a region log snapshot: online backup, chunked read and checked receive, against a file copy"
    static let help = """
        [--megabytes N] [--dir DIR]

        A follower far behind receives the leader's applied state as a snapshot (docs/DECISIONS.md,
        "Region log snapshots"). Builds a database of about N MB (default 256) of random 1 KB
        blobs, then measures in the same run, in MB/s of the database's size: a plain copy of
        the database file (read, write, fsync: the reference); the online backup
        (Store.backup, 1 024 pages a step); reading the backup as 1 MiB chunks with its SHA-256;
        receiving those chunks (write, SHA-256, fsync, quick_check; quick_check alone too); and the
        three together.
        Each figure is the faster of two rounds. The file is in the page cache for every
        figure, as it is on a leader that just wrote it. DIR (default: a temporary directory)
        should be on the disk you want to measure. Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let megabytes = try arguments.integer("megabytes", default: 256, range: 1...16_384)
        let parent = try arguments.option("dir") ?? FileManager.default.temporaryDirectory.path
        try arguments.finish()
        let directory = (parent as NSString).appendingPathComponent("domicile-bench-snapshot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let source = (directory as NSString).appendingPathComponent("node.sqlite")
        try fill(source, megabytes: megabytes)
        let store = try Store(path: source, migrator: Migrator([]), now: 0)
        defer { store.close() }
        let bytes = Double(try FileManager.default.attributesOfItem(atPath: source)[.size] as? NSNumber ?? 0)
        Output.line("domicile bench snapshot (\(String(format: "%.0f", bytes / 1e6)) MB database, in \(directory), SQLite \(Database.libraryVersion))")

        var copy = Double.infinity, backup = Double.infinity, read = Double.infinity, receive = Double.infinity, check = Double.infinity
        for round in 0..<2 {
            let copied = (directory as NSString).appendingPathComponent("copy-\(round).sqlite")
            copy = min(copy, try seconds { try copyFile(source, to: copied) })
            try FileManager.default.removeItem(atPath: copied)

            let backupPath = (directory as NSString).appendingPathComponent("backup-\(round).sqlite")
            backup = min(backup, try seconds { try store.backup(to: backupPath) })
            var chunks: [SnapshotChunk] = []
            var digest: [UInt8] = []
            read = min(read, try seconds {
                let reader = try SnapshotChunkReader(path: backupPath)
                digest = reader.digest
                var offset: UInt64 = 0
                while let chunk = try reader.chunk(at: offset) {
                    chunks.append(chunk)
                    offset += UInt64(chunk.bytes.count)
                }
            })
            let size = chunks.reduce(UInt64(0)) { $0 + UInt64($1.bytes.count) }
            var received = ""
            receive = min(receive, try seconds {
                let writer = try SnapshotChunkWriter(directory: directory, byteCount: size)
                for chunk in chunks { try writer.append(chunk) }
                received = try writer.finish(expectedDigest: digest)
            })
            check = min(check, try seconds { try SnapshotChunkWriter.checkDatabase(received) })
            guard try FileManager.default.contentsEqual(atPath: received, andPath: backupPath) else {
                throw CLIError.failed("the received snapshot differs from the backup")
            }
            try FileManager.default.removeItem(atPath: received)
            try FileManager.default.removeItem(atPath: backupPath)
        }
        let pipeline = backup + read + receive
        Output.line("step                               MB/s   vs file copy")
        for (name, time) in [("file copy (read, write, fsync)", copy), ("online backup", backup), ("read 1 MiB chunks + SHA-256", read),
                             ("receive: write, SHA-256, fsync, quick_check", receive), ("  of which quick_check", check),
                             ("backup + read + receive", pipeline)] {
            Output.line(name.padding(toLength: 44, withPad: " ", startingAt: 0) + String(format: "%8.0f   %5.2fx", bytes / 1e6 / time, copy / time))
        }
    }

    /// About `megabytes` MB of rows in one table, each a random 1 KB blob (as incompressible as sealed values).
    private static func fill(_ path: String, megabytes: Int) throws {
        let database = try Database(path: path)
        try database.execute("PRAGMA synchronous = OFF")
        try database.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB NOT NULL) STRICT")
        var random = SystemRandomNumberGenerator()
        let rows = megabytes * 1_000_000 / 1_024
        var payload = [UInt8](repeating: 0, count: 1_000)
        for start in stride(from: 0, to: rows, by: 10_000) {
            try database.transaction {
                for _ in start..<min(rows, start + 10_000) {
                    for index in stride(from: 0, to: payload.count, by: 8) {
                        withUnsafeBytes(of: random.next()) { payload.replaceSubrange(index..<index + 8, with: $0) }
                    }
                    try database.execute("INSERT INTO rows (payload) VALUES (?)", [payload])
                }
            }
        }
        try database.checkpoint(.truncate)
    }

    /// A plain copy: the file read and written in 1 MiB pieces, then fsync'd.
    private static func copyFile(_ source: String, to destination: String) throws {
        guard let input = FileHandle(forReadingAtPath: source) else { throw CLIError.failed("cannot open \(source)") }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: destination, contents: nil),
              let output = FileHandle(forWritingAtPath: destination) else { throw CLIError.failed("cannot create \(destination)") }
        defer { try? output.close() }
        while let data = try input.read(upToCount: 1 << 20), !data.isEmpty { try output.write(contentsOf: data) }
        try output.synchronize()
    }

    private static func seconds(_ body: () throws -> Void) throws -> Double {
        let start = Bench.monotonicSeconds()
        try body()
        return Bench.monotonicSeconds() - start
    }
}
