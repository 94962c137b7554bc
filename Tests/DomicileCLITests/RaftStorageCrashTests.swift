import DomicileModel
import DomicileNet
import DomicileStorage
import DomicileTestSupport
import XCTest

/// Nothing the region log acknowledged is lost: a child process
/// (`domicile storage raft-load`) persists entries as a Raft shell would and
/// prints each durable persist; it is killed with SIGKILL at random moments.
/// Reopened, the log loads (no gap, nothing corrupt), holds every
/// acknowledged entry with its term and payload unless a later, higher term
/// replaced it above the commit index, and its hard state never went back.
final class RaftStorageCrashTests: XCTestCase {
    /// What the acknowledgements say the disk holds at least.
    struct Model {
        var terms: [UInt64: UInt64] = [:]
        var commit: UInt64 = 0
        var term: UInt64 = 0
        var compactedThrough: UInt64 = 0

        mutating func apply(_ line: String) {
            let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
            if line.hasPrefix("ack "), fields.count == 4 {
                terms = terms.filter { $0.key < fields[0] }
                for index in fields[0]...fields[1] { terms[index] = fields[2] }
                (term, commit) = (fields[2], fields[3])
            } else if line.hasPrefix("compact "), fields.count == 1 {
                compactedThrough = fields[0]
            }
        }
    }

    func test_regionLog_keepsEveryAcknowledgedEntry_underSIGKILL() throws {
        let directory = TemporaryDirectory("domicile-raft-crash")
        let path = directory.file(RaftStorage.fileName)
        let seed = UInt64(ProcessInfo.processInfo.environment["DOMICILE_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64(Int64.max))
        print("region log crash test seed: \(seed) (replay with DOMICILE_CRASH_SEED=\(seed))")
        var random = SeededRandom(seed: seed)
        var model = Model()
        var acknowledged = 0
        var truncations = 0
        var compactions = 0

        for round in 0..<12 {
            let writerSeed = random.next() % UInt64(Int64.max)
            let process = try RunningProcess(Binary.path, ["storage", "raft-load", "--db", path, "--seed", "\(writerSeed)"])
            XCTAssertNotNil(process.waitForLine(timeout: 30) { $0.hasPrefix("ack ") }, "round \(round): the writer persisted nothing")
            // Let it write for a random while more: 0-300 ms, i.e. up to hundreds of persists.
            usleep(UInt32(random.next() % 300_000))
            process.signal(SIGKILL)
            XCTAssertEqual(process.wait(), 128 + SIGKILL, "round \(round)")
            let lines = process.output.filter { $0.hasPrefix("ack ") || $0.hasPrefix("compact ") }
            acknowledged += lines.filter { $0.hasPrefix("ack ") }.count
            compactions += lines.filter { $0.hasPrefix("compact ") }.count
            if let first = lines.first, first.hasPrefix("ack "), model.terms.keys.contains(where: { $0 >= UInt64(first.split(separator: " ")[1])! }) {
                truncations += 1
            }
            lines.forEach { model.apply($0) }

            let storage = try RaftStorage(path: path, now: 0)
            try check(storage, against: model, context: "round \(round) (seed \(seed))")
            // What is on disk, checked, is what the next round builds on
            // (a persist may have become durable just before the kill, unacknowledged).
            model = Model(terms: try storedTerms(storage), commit: storage.hardState.commit, term: storage.hardState.term,
                          compactedThrough: storage.snapshot.index)
        }
        // A last run to its end: it compacts (every 16 persists) and exits cleanly on the log the kills left.
        let last = try RunningProcess(Binary.path, ["storage", "raft-load", "--db", path, "--seed", "\(seed)", "--count", "48"])
        XCTAssertEqual(last.wait(), 0)
        compactions += last.output.filter { $0.hasPrefix("compact ") }.count
        last.output.filter { $0.hasPrefix("ack ") || $0.hasPrefix("compact ") }.forEach { model.apply($0) }
        try check(try RaftStorage(path: path, now: 0), against: model, context: "after the last run (seed \(seed))")

        print("region log crash test: \(acknowledged) persists acknowledged, \(truncations) suffixes replaced, \(compactions) compactions")
        XCTAssertGreaterThanOrEqual(acknowledged, 12, "every round persists at least once before its kill")
        XCTAssertGreaterThan(compactions, 0)
        XCTAssertEqual(truncations, 11, "every round after the first starts by replacing the uncommitted suffix")
    }

    func check(_ storage: RaftStorage, against model: Model, context: String) throws {
        XCTAssertGreaterThanOrEqual(storage.hardState.term, model.term, "\(context): the term went back")
        XCTAssertGreaterThanOrEqual(storage.hardState.commit, model.commit, "\(context): the commit index went back")
        XCTAssertGreaterThanOrEqual(storage.snapshot.index, model.compactedThrough, "\(context): a compaction was undone")
        for (index, term) in model.terms.sorted(by: { $0.key < $1.key }) where index >= storage.snapshot.index {
            if index == storage.snapshot.index {
                XCTAssertEqual(storage.snapshot.term, term, "\(context): the compaction boundary \(index) lost its term")
                continue
            }
            if index <= model.commit {
                XCTAssertEqual(try storage.term(at: index), term, "\(context): committed entry \(index) changed or was lost")
            } else if index <= storage.lastIndex {
                // Only a new leader's entries, of a higher term, may replace an uncommitted one.
                XCTAssertGreaterThanOrEqual(try storage.term(at: index), term, "\(context): entry \(index) went back a term")
            } else {
                XCTAssertGreaterThan(storage.lastTerm, term, "\(context): acknowledged entry \(index) was lost without a new term")
            }
        }
        // Every stored entry is whole: its payload is the one written for its index and term.
        var index = storage.firstIndex
        while index <= storage.lastIndex {
            for entry in try storage.entries(from: index, upTo: storage.lastIndex + 1, byteCountMax: 1 << 20) {
                XCTAssertEqual(entry.payload, Self.payload(index: entry.index, term: entry.term), "\(context): entry \(entry.index) is torn")
                index = entry.index + 1
            }
        }
    }

    func storedTerms(_ storage: RaftStorage) throws -> [UInt64: UInt64] {
        var terms: [UInt64: UInt64] = [storage.snapshot.index: storage.snapshot.term]
        for entry in try storage.entries(from: storage.firstIndex, upTo: storage.lastIndex + 1, byteCountMax: .max) {
            terms[entry.index] = entry.term
        }
        return terms
    }

    /// The payload `storage raft-load` writes (its --help states the formula).
    static func payload(index: UInt64, term: UInt64) -> [UInt8] {
        let size = 1 + Int((index &* 2_654_435_761 &+ term) % 700)
        return (0..<size).map { UInt8(truncatingIfNeeded: index &+ 7 &* term &+ UInt64($0)) }
    }
}
