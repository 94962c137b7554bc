import DomicileStorage
import Foundation

struct BenchChangesetCommand: Command {
    static let path = ["bench", "changeset"]
    static let summary = "benchmark capturing a transaction's changeset (SQLite sessions) and applying it on a follower"
    static let help = """
        [--seconds N] [--dir DIR]

        The region log's entries are SQLite changesets (docs/DECISIONS.md). For a consent-like
        write (register a subject and grant two purposes: nine INSERTs, blobs and hashes), in
        transactions of 1 write and of 500 writes, measures on one thread: transactions per second
        without a session (the reference), with a session capturing the changeset, and applying the
        captured changesets in order on a follower database (each in its own transaction, as a
        follower applies log entries); then the changeset and patchset sizes of the write and of a
        revocation (an UPDATE and a DELETE among its five statements). Durable (synchronous=FULL,
        as the node runs) and, to show the CPU cost alone, with synchronous=OFF. The follower's
        rows are checked equal to the leader's. DIR (default: a temporary directory) should be on
        the disk you want to measure. Build with -c release.
        """

    static func run(_ arguments: inout Arguments) async throws {
        let seconds = try arguments.integer("seconds", default: 3, range: 1...60)
        let directory = try arguments.option("dir") ?? FileManager.default.temporaryDirectory.path
        try arguments.finish()

        Output.line("domicile bench changeset (\(seconds) s per figure, one thread, WAL, in \(directory), SQLite \(Database.libraryVersion))")
        Output.line("sync  writes/txn   no session      with session         apply on follower")
        for durable in [true, false] {
            for writes in [1, 500] {
                let run = try measure(writesPerTransaction: writes, durable: durable, seconds: seconds, directory: directory)
                Output.line((durable ? "full" : "off ") + String(writes).leftPadded(12)
                            + "   " + rate(run.plain) + "   " + rate(run.captured) + String(format: " %5.2fx", run.captured / run.plain)
                            + "   " + rate(run.applied) + String(format: " %5.2fx", run.applied / run.plain))
            }
        }
        try sizes(directory: directory)
    }

    private static func rate(_ transactionsPerSecond: Double) -> String {
        (Bench.format(transactionsPerSecond).replacingOccurrences(of: "/s", with: "txn/s")).padding(toLength: 13, withPad: " ", startingAt: 0)
    }

    /// Transactions per second without a session, with one, and applying
    /// the captured changesets on a follower.
    static func measure(writesPerTransaction: Int, durable: Bool, seconds: Int,
                        directory: String) throws -> (plain: Double, captured: Double, applied: Double) {
        let scratch = Scratch(directory: directory)
        defer { scratch.remove() }
        let plain = try ConsentWorkload(database: scratch.open("plain", durable: durable))
        let plainRate = try transactionsPerSecond(seconds: seconds) {
            try plain.database.transaction { try plain.write(count: writesPerTransaction) }
        }
        let leader = try ConsentWorkload(database: scratch.open("leader", durable: durable))
        var changesets: [Changeset] = []
        let capturedRate = try transactionsPerSecond(seconds: seconds) {
            changesets.append(try leader.database.capturingChanges { try leader.write(count: writesPerTransaction) }.changeset)
        }
        let follower = try ConsentWorkload(database: scratch.open("follower", durable: durable))
        let start = Bench.monotonicSeconds()
        for changeset in changesets { try follower.database.apply(changeset) }
        let appliedRate = Double(changesets.count) / (Bench.monotonicSeconds() - start)
        guard try follower.database.contentDump() == leader.database.contentDump() else {
            throw CLIError.failed("the follower's rows differ from the leader's after applying its changesets")
        }
        return (plainRate, capturedRate, appliedRate)
    }

    private static func transactionsPerSecond(seconds: Int, _ transaction: () throws -> Void) throws -> Double {
        try transaction()
        let start = Bench.monotonicSeconds()
        var count = 1
        while Bench.monotonicSeconds() - start < Double(seconds) {
            try transaction()
            count += 1
        }
        return Double(count - 1) / (Bench.monotonicSeconds() - start)
    }

    /// Bytes of the changeset and of the patchset of each kind of write.
    static func sizes(directory: String) throws {
        let scratch = Scratch(directory: directory)
        defer { scratch.remove() }
        let workload = try ConsentWorkload(database: scratch.open("sizes", durable: false))
        Output.line("bytes per transaction      changeset   patchset")
        for writes in [1, 500] {
            for kind in ["grant", "revoke"] {
                let capture = try workload.database.captureChanges()
                try workload.database.transaction {
                    if kind == "grant" { try workload.write(count: writes) } else { try workload.revoke(count: writes) }
                }
                let changeset = try capture.changeset().bytes.count
                let patchset = try capture.patchset().bytes.count
                Output.line("\(kind) × \(writes)".padding(toLength: 24, withPad: " ", startingAt: 0)
                            + String(changeset).leftPadded(11) + String(patchset).leftPadded(11)
                            + String(format: "   (patchset %.0f%% of changeset)", 100 * Double(patchset) / Double(changeset)))
            }
        }
    }
}

/// Database files of one measurement, removed after it.
private struct Scratch {
    let prefix: String

    init(directory: String) {
        prefix = (directory as NSString).appendingPathComponent("domicile-bench-changeset-\(UUID().uuidString)")
    }

    func open(_ name: String, durable: Bool) throws -> Database {
        let database = try Database(path: "\(prefix)-\(name).sqlite")
        if !durable { try database.execute("PRAGMA synchronous = OFF") }
        return database
    }

    func remove() {
        for name in ["plain", "leader", "follower", "sizes"] {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: "\(prefix)-\(name).sqlite\(suffix)") }
        }
    }
}

/// A node-like consent schema (STRICT tables, some WITHOUT ROWID, blobs)
/// and its writes. Values derive from a counter, so two runs write the same
/// rows; what SQLite draws (randomblob) stands for keys and nonces.
private final class ConsentWorkload {
    let database: Database
    private var subjects = 0
    private var revoked = 0

    init(database: Database) throws {
        self.database = database
        try database.executeScript("""
            CREATE TABLE subjects (pid TEXT PRIMARY KEY, key_version INTEGER NOT NULL, link BLOB NOT NULL,
                                   wrapped_key BLOB NOT NULL, created_at INTEGER NOT NULL) STRICT;
            CREATE TABLE identities (pid TEXT NOT NULL REFERENCES subjects (pid), kind TEXT NOT NULL, sealed_value BLOB NOT NULL,
                                     PRIMARY KEY (pid, kind)) STRICT, WITHOUT ROWID;
            CREATE TABLE consent_receipts (receipt_id TEXT PRIMARY KEY, pid TEXT NOT NULL, seq INTEGER NOT NULL, action TEXT NOT NULL,
                                           source TEXT NOT NULL, collected_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL,
                                           prev_hash BLOB NOT NULL, hash BLOB NOT NULL, UNIQUE (pid, seq)) STRICT;
            CREATE TABLE consent_receipt_purposes (receipt_id TEXT NOT NULL REFERENCES consent_receipts (receipt_id),
                                                   position INTEGER NOT NULL, purpose TEXT NOT NULL,
                                                   PRIMARY KEY (receipt_id, position)) STRICT, WITHOUT ROWID;
            CREATE TABLE consent_active (pid TEXT NOT NULL, purpose TEXT NOT NULL, basis TEXT NOT NULL, granted_at INTEGER NOT NULL,
                                         receipt_id TEXT NOT NULL, PRIMARY KEY (pid, purpose)) STRICT, WITHOUT ROWID;
            CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL,
                                    pid TEXT, outcome TEXT NOT NULL, request_id TEXT, prev_hash BLOB NOT NULL, hash BLOB NOT NULL) STRICT;
            """)
    }

    private func pid(_ index: Int) -> String { "pid-\(String(index, radix: 16).leftPadded(12))" }

    /// `count` subjects registered, each granting two purposes: nine INSERTs each.
    func write(count: Int) throws {
        for _ in 0..<count {
            subjects += 1
            let pid = pid(subjects), receipt = "rcpt-\(subjects)", at = 1_800_000_000_000 + subjects
            try database.execute("INSERT INTO subjects VALUES (?, 1, randomblob(32), randomblob(60), ?)", [pid, at])
            try database.execute("INSERT INTO identities VALUES (?, 'email', randomblob(60))", [pid])
            try database.execute("INSERT INTO audit_log (at, principal, action, pid, outcome, request_id, prev_hash, hash) "
                                 + "VALUES (?, 'crm-sync', 'subject.register', ?, 'ok', ?, randomblob(32), randomblob(32))", [at, pid, "req-\(subjects)"])
            try database.execute("INSERT INTO consent_receipts VALUES (?, ?, 1, 'grant', 'web-form', ?, ?, zeroblob(32), randomblob(32))",
                                 [receipt, pid, at, at])
            for (position, purpose) in ["analytics", "product_recs"].enumerated() {
                try database.execute("INSERT INTO consent_receipt_purposes VALUES (?, ?, ?)", [receipt, position, purpose])
                try database.execute("INSERT INTO consent_active VALUES (?, ?, 'consent', ?, ?)", [pid, purpose, at, receipt])
            }
            try database.execute("INSERT INTO audit_log (at, principal, action, pid, outcome, request_id, prev_hash, hash) "
                                 + "VALUES (?, 'crm-sync', 'consent.grant', ?, 'ok', ?, randomblob(32), randomblob(32))", [at, pid, "req-\(subjects)"])
        }
    }

    /// `count` revocations of a granted purpose: a receipt, its purpose, a
    /// DELETE of the active grant, an UPDATE of the other's, an audit entry.
    func revoke(count: Int) throws {
        for _ in 0..<count {
            revoked += 1
            let pid = pid(revoked), receipt = "rcpt-r-\(revoked)", at = 1_900_000_000_000 + revoked
            try database.execute("INSERT INTO consent_receipts VALUES (?, ?, 2, 'revoke', 'web-form', ?, ?, randomblob(32), randomblob(32))",
                                 [receipt, pid, at, at])
            try database.execute("INSERT INTO consent_receipt_purposes VALUES (?, 0, 'analytics')", [receipt])
            try database.execute("DELETE FROM consent_active WHERE pid = ? AND purpose = 'analytics'", [pid])
            try database.execute("UPDATE consent_active SET granted_at = ? WHERE pid = ? AND purpose = 'product_recs'", [at, pid])
            try database.execute("INSERT INTO audit_log (at, principal, action, pid, outcome, request_id, prev_hash, hash) "
                                 + "VALUES (?, 'crm-sync', 'consent.revoke', ?, 'ok', ?, randomblob(32), randomblob(32))", [at, pid, "req-r-\(revoked)"])
        }
    }
}
