import Synchronization

/// Every slot's eligibility deadline, densely: one 8-byte atomic per slot in
/// chunks of `SlotStorage.chunkSlots`, apart from the slot records. A scan
/// reads only this array to decide which slots to score (eight slots per
/// cache line), and the planner samples it to estimate how many vectors are
/// eligible.
///
/// A slot that holds no vector (never filled, or retired) has the deadline
/// `never`, so it is skipped without reading its record. Chunks never move
/// once allocated: readers take no lock while the writer appends chunks.
final class DeadlineChunks: @unchecked Sendable {
    /// Earlier than any time a search asks about: the slot is never eligible.
    static let never = Int64.min

    private let chunks: UnsafeMutablePointer<UnsafeMutablePointer<Atomic<Int64>>>
    /// Chunks allocated; written by the writer only, after the chunk's address
    /// (read by anyone, for the memory held).
    private let allocatedChunks = Atomic<Int>(0)
    private var chunkCount: Int { allocatedChunks.load(ordering: .acquiring) }
    /// Slots whose deadline is `Int64.max` (always eligible), and slots with
    /// any other deadline but `never` (eligible until a time, perhaps
    /// passed): the eligible count at any time lies between `always` and
    /// `always + untilTime`, kept exact by `set`.
    private let always = Atomic<Int>(0)
    private let untilTime = Atomic<Int>(0)

    init() {
        chunks = .allocate(capacity: SlotStorage.chunksMax)
    }

    deinit {
        for index in 0..<chunkCount { chunks[index].deinitialize(count: SlotStorage.chunkSlots).deallocate() }
        chunks.deallocate()
    }

    /// Bytes held.
    var allocatedBytes: Int { chunkCount * SlotStorage.chunkSlots * MemoryLayout<Int64>.stride }

    /// Allocates the next chunk, every deadline `never` (writer only).
    func append() {
        let chunk = UnsafeMutablePointer<Atomic<Int64>>.allocate(capacity: SlotStorage.chunkSlots)
        for index in 0..<SlotStorage.chunkSlots { (chunk + index).initialize(to: Atomic(Self.never)) }
        chunks[chunkCount] = chunk
        allocatedChunks.store(chunkCount + 1, ordering: .releasing)
    }

    @inline(__always)
    subscript(slot: UInt32) -> Int64 {
        chunks[Int(slot) >> SlotStorage.chunkShift][Int(slot) & (SlotStorage.chunkSlots - 1)].load(ordering: .relaxed)
    }

    func set(_ slot: UInt32, _ deadline: Int64) {
        let old = chunks[Int(slot) >> SlotStorage.chunkShift][Int(slot) & (SlotStorage.chunkSlots - 1)]
            .exchange(deadline, ordering: .relaxed)
        count(old, -1)
        count(deadline, 1)
    }

    private func count(_ deadline: Int64, _ change: Int) {
        switch deadline {
        case .max: always.add(change, ordering: .relaxed)
        case Self.never: return
        default: untilTime.add(change, ordering: .relaxed)
        }
    }

    /// Bounds of the number of slots eligible at any time (see `always`).
    /// Whether every filled slot is eligible forever (no deadline is a
    /// time): a walk then need not look a candidate's deadline up.
    var allEligibleForever: Bool { untilTime.load(ordering: .relaxed) <= 0 }

    var eligibleBounds: ClosedRange<Int> {
        let always = max(always.load(ordering: .relaxed), 0)
        return always...(always + max(untilTime.load(ordering: .relaxed), 0))
    }

    /// Calls `body` with each slot below `end` whose deadline is later than
    /// `now`, in slot order: the loop a scan runs, one chunk at a time.
    @inline(__always)
    func forEachEligible(below end: Int, now: Int64, _ body: (UInt32) -> Void) {
        var base = 0
        while base < end {
            let chunk = chunks[base >> SlotStorage.chunkShift]
            let count = min(SlotStorage.chunkSlots, end - base)
            for offset in 0..<count where chunk[offset].load(ordering: .relaxed) > now {
                body(UInt32(truncatingIfNeeded: base + offset))
            }
            base += SlotStorage.chunkSlots
        }
    }

    /// How many of `samples` slots below `end` are eligible at `now`: runs of
    /// eight adjacent slots (one cache line) spread evenly over the slots.
    func sampleEligible(below end: Int, samples: Int, now: Int64) -> (sampled: Int, eligible: Int) {
        let run = 8
        let runs = min(max(samples / run, 1), max(end / run, 1))
        var sampled = 0, eligible = 0
        for index in 0..<runs {
            let start = index * end / runs
            for slot in start..<min(start + run, end) {
                sampled += 1
                if self[UInt32(truncatingIfNeeded: slot)] > now { eligible += 1 }
            }
        }
        return (sampled, eligible)
    }
}
