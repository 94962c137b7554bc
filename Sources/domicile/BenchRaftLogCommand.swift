import DomicileStorage
import Foundation

/// `domicile bench raftlog`: durable appends to the region log's storage
/// against plain SQLite and a plain append-only file, in the same run.
struct BenchRaftLogCommand: Command {
    static let path = ["bench", "raftlog"]
    static let summary = "benchmark region-log appends against plain SQLite inserts and write+fdatasync"
    static let help = """
        [--seconds N] [--rounds N] [--dir DIR] [--cases LIST]

        For entries of 256 B and 64 KiB, with 1 and 64 entries per persist, measures durable
        appends per second through RaftStorage.persist (entries and hard state in one
        transaction, WAL, synchronous=FULL). References, in the same directory and run: plain
        SQLite (INSERT of the same rows, then COMMIT, same connection settings) and a lower
        bound, write(2) of the same bytes to an append-only file then fdatasync. Each figure is
        the best of --rounds (default 2) interleaved rounds of --seconds (default 2).
        DIR (default: a temporary directory) should be on the disk you want to measure.
        LIST picks cases as BYTESxPER-PERSIST (default 256x1,256x64,65536x1,65536x64).
        """

    static func cases(_ text: String) throws -> [(entryBytes: Int, entriesPerPersist: Int)] {
        try text.split(separator: ",").map { item in
            let parts = item.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, (1...(16 << 20)).contains(parts[0]), (1...4_096).contains(parts[1]) else {
                throw CLIError.usage("--cases is a comma-separated list of BYTESxPER-PERSIST, e.g. 256x1,65536x64")
            }
            return (parts[0], parts[1])
        }
    }

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = Double(try arguments.integer("seconds", default: 2, range: 1...60))
        let rounds = try arguments.integer("rounds", default: 2, range: 1...20)
        let directory = try arguments.option("dir") ?? FileManager.default.temporaryDirectory.path
        let selected = try cases(arguments.option("cases") ?? "256x1,256x64,65536x1,65536x64")
        try arguments.finish()

        Output.line("domicile bench raftlog (best of \(rounds) rounds of \(Int(seconds)) s, WAL, synchronous=FULL, in \(directory))")
        Output.line("entry     per persist  region log            plain SQLite          ratio   write+fdatasync       ratio")
        for (entryBytes, entriesPerPersist) in selected {
            var best = (log: 0.0, sqlite: 0.0, file: 0.0)
            for _ in 0..<rounds {
                best.log = max(best.log, try measure(in: directory, seconds: seconds, entryBytes: entryBytes, batch: entriesPerPersist, appendRaftLog))
                best.sqlite = max(best.sqlite, try measure(in: directory, seconds: seconds, entryBytes: entryBytes, batch: entriesPerPersist, appendSQLite))
                best.file = max(best.file, try measure(in: directory, seconds: seconds, entryBytes: entryBytes, batch: entriesPerPersist, appendFile))
            }
            let size = entryBytes < 1_024 ? "\(entryBytes) B" : "\(entryBytes / 1_024) KiB"
            Output.line(size.padding(toLength: 10, withPad: " ", startingAt: 0) + String(entriesPerPersist).leftPadded(11) + "  "
                        + figure(best.log, entryBytes) + figure(best.sqlite, entryBytes) + String(format: "%5.2f   ", best.log / best.sqlite)
                        + figure(best.file, entryBytes) + String(format: "%5.2f", best.log / best.file))
        }
    }

    static func figure(_ entriesPerSecond: Double, _ entryBytes: Int) -> String {
        (Bench.format(entriesPerSecond) + String(format: " %6.1f MB/s", entriesPerSecond * Double(entryBytes) / 1e6))
            .padding(toLength: 22, withPad: " ", startingAt: 0)
    }

    /// Appends `batch` entries per durable step into a fresh file under
    /// `directory` until `seconds` have passed; returns entries per second.
    typealias Appender = (_ path: String, _ payload: [UInt8], _ batch: Int, _ deadline: Double) throws -> Int

    static func measure(in directory: String, seconds: Double, entryBytes: Int, batch: Int, _ append: Appender) throws -> Double {
        let path = (directory as NSString).appendingPathComponent("domicile-bench-raftlog-\(UUID().uuidString)")
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let payload = [UInt8](repeating: 0xA5, count: entryBytes)
        let start = Bench.monotonicSeconds()
        let entries = try append(path, payload, batch, start + seconds)
        return Double(entries) / (Bench.monotonicSeconds() - start)
    }

    /// What the shell does per Ready: the new entries and the hard state
    /// (the commit index trailing by one persist) in one `persist`.
    static func appendRaftLog(path: String, payload: [UInt8], batch: Int, deadline: Double) throws -> Int {
        let storage = try RaftStorage(path: path, now: unixNow())
        var last: UInt64 = 0
        repeat {
            let entries = (last + 1...last + UInt64(batch)).map { RaftStoredEntry(index: $0, term: 1, payload: payload) }
            try storage.persist(hardState: RaftHardState(term: 1, vote: "bench", commit: last), entries: entries)
            last += UInt64(batch)
        } while Bench.monotonicSeconds() < deadline
        return Int(last)
    }

    /// The reference: the same rows into a plain table, then COMMIT.
    static func appendSQLite(path: String, payload: [UInt8], batch: Int, deadline: Double) throws -> Int {
        let database = try Database(path: path)
        try database.executeScript("CREATE TABLE entries (id INTEGER PRIMARY KEY, payload BLOB NOT NULL) STRICT")
        var last: Int64 = 0
        repeat {
            try database.transaction {
                let insert = try database.statement("INSERT INTO entries (id, payload) VALUES (?, ?)")
                for _ in 0..<batch {
                    last += 1
                    try insert.bind([last, payload])
                    try insert.run()
                }
            }
        } while Bench.monotonicSeconds() < deadline
        return Int(last)
    }

    /// The lower bound: each entry as a 16-byte header and its payload
    /// written to the end of a file, one fdatasync per persist.
    static func appendFile(path: String, payload: [UInt8], batch: Int, deadline: Double) throws -> Int {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError.failed("\(path): open failed: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var record = [UInt8](repeating: 0, count: 16) + payload
        var last: UInt64 = 0
        repeat {
            for _ in 0..<batch {
                last += 1
                withUnsafeBytes(of: last.littleEndian) { record.replaceSubrange(0..<8, with: $0) }
                let written = record.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                guard written == record.count else { throw CLIError.failed("\(path): write failed") }
            }
            guard fdatasync(descriptor) == 0 else { throw CLIError.failed("\(path): fdatasync failed: \(String(cString: strerror(errno)))") }
        } while Bench.monotonicSeconds() < deadline
        return Int(last)
    }
}
