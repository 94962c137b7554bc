import DomicileModel
import DomicileStorage

/// Load generator for the region log's crash test (Tests/DomicileCLITests):
/// appends entries as a Raft shell would, one `persist` per step, and prints
/// what each persist made durable, until killed or done.
struct StorageRaftLoadCommand: Command {
    static let path = ["storage", "raft-load"]
    static let summary = "append region-log entries, printing each durable persist (crash tests)"
    static let help = """
        --db PATH [--seed N] [--count N]

        Opens the region log at PATH and starts a new term (the stored term + 1). Its first
        persist replaces the entries after the commit index (a new leader's conflicting
        suffix); then each persist appends 1-8 entries and may advance the commit index (to
        1-4 entries before the last, so there is always an uncommitted suffix), and
        prints `ack <first> <last> <term> <commit>` once it is durable. Every 16 persists it
        compacts the log through 16 entries before the commit index and prints `compact <index>`.
        Entry i of term t holds 1 + (i * 2654435761 + t) mod 700 bytes, byte k being
        (i + 7t + k) mod 256. --count bounds the persists (default: until killed).
        """

    static func run(_ arguments: inout Arguments) async throws {
        let path = try arguments.required("db")
        let seed = try arguments.integer("seed", default: 1, range: 0...Int.max)
        let count = try arguments.integer("count", default: 0, range: 0...999_999_999)
        try arguments.finish()

        let storage = try RaftStorage(path: path, now: unixNow())
        var random = SeededRandom(seed: UInt64(seed))
        let term = storage.hardState.term + 1
        var commit = storage.hardState.commit
        var next = commit + 1
        Output.line("ready \(storage.firstIndex) \(storage.lastIndex)")
        var persists = 0
        while count == 0 || persists < count {
            let batch = 1 + random.next() % 8
            let entries = (next..<next + batch).map { RaftStoredEntry(index: $0, term: term, payload: payload(index: $0, term: term)) }
            let last = next + batch - 1
            // The commit index trails the last entry by 1-4, so a kill always leaves an uncommitted suffix.
            if random.next() % 2 == 0 { commit = max(commit, last - min(last, 1 + random.next() % 4)) }
            try storage.persist(hardState: RaftHardState(term: term, vote: "crash-writer", commit: commit), entries: entries)
            Output.line("ack \(next) \(last) \(term) \(commit)")
            next = last + 1
            persists += 1
            if persists % 16 == 0, commit > 16 {
                let snapshot = try storage.compact(through: commit - 16, configuration: Array("members".utf8))
                Output.line("compact \(snapshot.index)")
            }
        }
    }

    static func payload(index: UInt64, term: UInt64) -> [UInt8] {
        let size = 1 + Int((index &* 2_654_435_761 &+ term) % 700)
        return (0..<size).map { UInt8(truncatingIfNeeded: index &+ 7 &* term &+ UInt64($0)) }
    }
}
