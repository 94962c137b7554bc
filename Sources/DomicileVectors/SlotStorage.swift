import CPrefetch
import Foundation
import Synchronization

/// The memory behind an index: per slot a vector, a liveness word, an
/// eligibility deadline, a level and neighbour lists. Slots live in chunks
/// that never move once allocated, so searches read them without a global
/// lock while the writer appends new chunks.
///
/// A chunk holds, for its 1 024 slots, first their states (dense: a search
/// checks a neighbour's liveness in a line shared by 16 slots, not in the
/// neighbour's record), then one record per slot, so a search that scores a
/// slot and later expands it touches one region of memory (as hnswlib lays
/// out its level 0):
///
///     offset                  size               field
///     0                       4                  links stamp (sequence lock)
///     4                       4                  level
///     8                       8                  upper-level lists (nil on level 0)
///     16                      4 · (1 + 2m)       level-0 links: count, then neighbours
///     vectorOffset (64-byte)  4 · dimension      the vector
///
/// records padded to a multiple of 64 bytes (a cache line). Eligibility
/// deadlines are not in the records but in a dense array of their own
/// (`DeadlineChunks`), so an exact scan reads 8 bytes per slot it skips.
///
/// Who may touch what:
/// - `state` and `deadline` are atomics, read by anyone.
/// - A slot's level and neighbour lists are written under its stripe lock
///   (one writer per slot at a time), between two increments of its stamp;
///   readers take no lock: they read with relaxed atomics and keep what they
///   read only if the stamp was even and did not change (`readNeighbours`).
///   Upper-level lists a slot drops are kept for reuse by a slot of the same
///   level, never freed while the storage lives, so a reader that raced a
///   reset reads stale slot numbers, never freed memory.
/// - A slot's vector is written by the writer before the slot becomes
///   reachable (a link to it is published between stamps, or the entry
///   point with release ordering), and zeroed after it stopped being live.
///   A search may still be reading a vector the writer zeroes or refills
///   (plain stores racing plain loads: a formal data race, harmless on
///   x86-64 and arm64, which a thread sanitizer reports); what it scored
///   is dropped, because the slot's state changed (`VectorIndex.name`).
final class SlotStorage: @unchecked Sendable {
    static let chunkShift = 10
    static let chunkSlots = 1 << chunkShift
    static let stripeCount = 4096
    /// At most this many slots (64 M): a fixed chunk directory, allocated once.
    static let chunksMax = 1 << 16
    static var slotsMax: Int { chunksMax * chunkSlots }

    let dimension: Int
    /// Neighbours kept per slot on level 0 and on the levels above.
    let level0Max: Int
    let upperMax: Int

    private static let stampOffset = 0
    private static let levelOffset = 4
    private static let upperOffset = 8
    private static let linksOffset = 16
    /// The states of a chunk's slots, before its records.
    private static let statesBytes = chunkSlots * 4
    private let vectorOffset: Int
    /// Cache lines of a vector, all prefetched before it is scored, and of
    /// the record's head up to the end of its level-0 links.
    let vectorLines: Int
    private let linkLines: Int
    /// Bytes per record.
    let stride: Int

    private let chunks: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Chunks allocated; written by the writer only, after the chunk's address.
    private let allocatedChunks = Atomic<Int>(0)
    private var chunkCount: Int { allocatedChunks.load(ordering: .acquiring) }
    private let stripes: UnsafeMutablePointer<Mutex<Void>>
    /// Every slot's eligibility deadline, apart from the records.
    let deadlines = DeadlineChunks()

    /// Upper-level lists: bytes held, and the addresses of those dropped by
    /// a slot, by level count, for the next slot with as many levels.
    private struct UpperLists {
        var bytes = 0
        var spare: [[UInt]] = Array(repeating: [], count: 256)
    }

    private let upper = Mutex(UpperLists())

    init(dimension: Int, level0Max: Int, upperMax: Int) {
        precondition(dimension <= 1 << 16 && level0Max <= 1 << 10, "record too large for the unchecked arithmetic")
        // `readNeighbours` copies any level's list into a buffer of `level0Max`.
        precondition(upperMax <= level0Max, "upper-level lists longer than level 0's")
        self.dimension = dimension
        self.level0Max = level0Max
        self.upperMax = upperMax
        vectorOffset = (Self.linksOffset + 4 * (1 + level0Max) + 63) & ~63
        vectorLines = (4 * dimension + 63) / 64
        linkLines = (Self.linksOffset + 4 * (1 + level0Max) + 63) / 64
        stride = (vectorOffset + 4 * dimension + 63) & ~63
        chunks = .allocate(capacity: Self.chunksMax)
        stripes = .allocate(capacity: Self.stripeCount)
        for index in 0..<Self.stripeCount { (stripes + index).initialize(to: Mutex(())) }
    }

    deinit {
        for index in 0..<chunkCount {
            for slot in 0..<Self.chunkSlots {
                (chunks[index] + Self.statesBytes + slot * stride + Self.upperOffset)
                    .load(as: UnsafeMutablePointer<UInt32>?.self)?.deallocate()
            }
            chunks[index].deallocate()
        }
        upper.withLock { $0.spare.joined().forEach { UnsafeMutableRawPointer(bitPattern: $0)?.deallocate() } }
        chunks.deallocate()
        stripes.deinitialize(count: Self.stripeCount).deallocate()
    }

    /// Memory held: every allocated chunk, and the upper-level lists.
    var allocatedBytes: Int {
        chunkCount * (Self.statesBytes + Self.chunkSlots * stride) + upper.withLock { $0.bytes } + deadlines.allocatedBytes
    }

    /// Slots allocated so far (writer only).
    var capacity: Int { chunkCount * Self.chunkSlots }

    /// Makes `slot` addressable (writer only).
    func ensure(_ slot: Int) throws(VectorError) {
        while slot >= capacity {
            guard chunkCount < Self.chunksMax else { throw .capacityExhausted(Self.slotsMax) }
            let bytes = Self.statesBytes + Self.chunkSlots * stride
            let chunk = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            chunk.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            let states = chunk.bindMemory(to: Atomic<UInt32>.self, capacity: Self.chunkSlots)
            for index in 0..<Self.chunkSlots { (states + index).initialize(to: Atomic(0)) }
            deadlines.append()
            chunks[chunkCount] = chunk
            allocatedChunks.store(chunkCount + 1, ordering: .releasing)
        }
    }

    // MARK: Addresses
    //
    // Overflow-free by construction: a slot is below 2²⁶ (`slotsMax`), so its
    // index in a chunk is below 2¹⁰, and a record is below 2¹⁹ bytes (the
    // dimension and the list lengths are bounded in `init`), so every product
    // and sum below fits in 30 bits. Debug builds assert it.

    @inline(__always)
    private func chunk(_ slot: UInt32) -> UnsafeMutableRawPointer {
        assert(Int(slot) < capacity, "slot \(slot) beyond the allocated chunks")
        return chunks[Int(slot &>> UInt32(Self.chunkShift))]
    }

    @inline(__always)
    private func index(_ slot: UInt32) -> Int { Int(slot & UInt32(Self.chunkSlots - 1)) }

    @inline(__always)
    private func record(_ slot: UInt32) -> UnsafeMutableRawPointer {
        chunk(slot) + (Self.statesBytes &+ index(slot) &* stride)
    }

    @inline(__always)
    private func stamp(_ record: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt32> {
        (record + Self.stampOffset).assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always)
    private func upperLists(_ record: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UnsafeMutableRawPointer?> {
        (record + Self.upperOffset).assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
    }

    // MARK: Vectors

    @inline(__always)
    func vector(_ slot: UInt32) -> UnsafeMutablePointer<Float> {
        (record(slot) + vectorOffset).assumingMemoryBound(to: Float.self)
    }

    /// Hints the cache to fetch every line of the slot's vector.
    @inline(__always)
    func prefetchVector(_ slot: UInt32) {
        domicile_prefetch_lines(record(slot) + vectorOffset, vectorLines)
    }

    /// Hints the cache to fetch the first line of the slot's vector.
    @inline(__always)
    func prefetchVectorHead(_ slot: UInt32) {
        domicile_prefetch(record(slot) + vectorOffset)
    }

    /// Hints the cache to fetch the slot's stamp and level-0 links.
    @inline(__always)
    func prefetchLinks(_ slot: UInt32) {
        domicile_prefetch_lines(record(slot), linkLines)
    }

    // MARK: Liveness and eligibility

    /// `generation << 1 | live`: the generation grows each time the slot
    /// is filled or emptied, so a search can tell the slot it scored from a
    /// later occupant of the same slot.
    @inline(__always)
    func state(_ slot: UInt32) -> UInt32 {
        chunk(slot).assumingMemoryBound(to: Atomic<UInt32>.self)[index(slot)].load(ordering: .acquiring)
    }

    func setState(_ slot: UInt32, _ state: UInt32) {
        chunk(slot).assumingMemoryBound(to: Atomic<UInt32>.self)[index(slot)].store(state, ordering: .releasing)
    }

    /// Milliseconds since the epoch until which the slot's subject is
    /// eligible to appear in results (`DeadlineChunks.never` for an empty slot).
    @inline(__always)
    func deadline(_ slot: UInt32) -> Int64 { deadlines[slot] }

    func setDeadline(_ slot: UInt32, _ deadline: Int64) { deadlines.set(slot, deadline) }

    // MARK: Levels and links: readers

    /// Copies the slot's neighbours on `level` into `buffer` (room for
    /// `level0Max`) without a lock; returns how many (0 when the slot has no
    /// such level). A copy torn by a writer is thrown away and read again.
    @inline(__always)
    func readNeighbours(_ slot: UInt32, level: Int, into buffer: UnsafeMutablePointer<UInt32>) -> Int {
        let record = record(slot)
        let stamp = stamp(record)
        var attempts = 0
        while true {
            let begun = domicile_stamp_read_begin(stamp)
            if let count = readLinks(record, level: level, stamp: stamp, begun: begun, into: buffer),
               domicile_stamp_read_valid(stamp, begun) != 0 {
                return count
            }
            attempts &+= 1
            // A writer holds the stamp odd for a few dozen stores; if it was
            // descheduled meanwhile, let it run.
            if attempts & 63 == 0 { sched_yield() }
        }
    }

    /// One attempt of `readNeighbours`: nil when the level and the list's
    /// address it read are already inconsistent (the address is not followed).
    @inline(__always)
    private func readLinks(_ record: UnsafeMutableRawPointer, level: Int, stamp: UnsafeMutablePointer<UInt32>, begun: UInt32,
                           into buffer: UnsafeMutablePointer<UInt32>) -> Int? {
        if level == 0 {
            let links = (record + Self.linksOffset).assumingMemoryBound(to: UInt32.self)
            let count = min(Int(domicile_load_word(links)), level0Max)
            domicile_copy_words(buffer, links + 1, count)
            return count
        }
        let top = Int(domicile_load_word((record + Self.levelOffset).assumingMemoryBound(to: UInt32.self)))
        guard level <= top else { return 0 }
        let lists = domicile_load_pointer(upperLists(record))
        // The list's address is followed only once it is known to belong to a
        // slot with `top` levels (a list is reused only by a slot with as many).
        guard let lists, domicile_stamp_read_valid(stamp, begun) != 0 else { return nil }
        let links = lists.assumingMemoryBound(to: UInt32.self) + (level &- 1) &* (upperMax &+ 1)
        let count = min(Int(domicile_load_word(links)), upperMax)
        domicile_copy_words(buffer, links + 1, count)
        return count
    }

    /// The level of a slot.
    func level(_ slot: UInt32) -> Int {
        let record = record(slot)
        let stamp = stamp(record)
        var attempts = 0
        while true {
            let begun = domicile_stamp_read_begin(stamp)
            let level = Int(domicile_load_word((record + Self.levelOffset).assumingMemoryBound(to: UInt32.self)))
            if domicile_stamp_read_valid(stamp, begun) != 0 { return level }
            attempts &+= 1
            if attempts & 63 == 0 { sched_yield() }
        }
    }

    /// A copy of the slot's neighbours on `level`.
    func neighbours(_ slot: UInt32, level: Int) -> [UInt32] {
        [UInt32](unsafeUninitializedCapacity: level0Max) { buffer, count in
            count = readNeighbours(slot, level: level, into: buffer.baseAddress!)
        }
    }

    // MARK: Levels and links: writers

    @inline(__always)
    private func withStripe<T>(_ slot: UInt32, _ body: () -> T) -> T {
        stripes[Int(slot) & (Self.stripeCount - 1)].withLock { _ in body() }
    }

    /// Gives the slot `level` levels above level 0, all lists empty (writer only).
    func resetLinks(_ slot: UInt32, level: Int) {
        precondition(level < 256, "a level beyond 255")
        let record = record(slot)
        let fresh = upperListsFor(level)
        let (old, oldLevel) = withStripe(slot) {
            let stamp = stamp(record)
            let levelWord = (record + Self.levelOffset).assumingMemoryBound(to: UInt32.self)
            let old = upperLists(record).pointee, oldLevel = Int(domicile_load_word(levelWord))
            domicile_stamp_write_begin(stamp)
            domicile_store_pointer(upperLists(record), fresh.map(UnsafeMutableRawPointer.init))
            domicile_store_word(levelWord, UInt32(level))
            domicile_store_word((record + Self.linksOffset).assumingMemoryBound(to: UInt32.self), 0)
            domicile_stamp_write_end(stamp)
            return (old, oldLevel)
        }
        if let old {
            let address = UInt(bitPattern: old)
            upper.withLock { $0.spare[oldLevel].append(address) }
        }
    }

    /// Empty lists for `level` upper levels: a spare one (its counts zeroed
    /// with atomic stores, as a late reader of its former slot may still read
    /// it), or a new one.
    private func upperListsFor(_ level: Int) -> UnsafeMutablePointer<UInt32>? {
        guard level > 0 else { return nil }
        let words = level * (upperMax + 1)
        return upper.withLock { lists in
            if let address = lists.spare[level].popLast(), let spare = UnsafeMutablePointer<UInt32>(bitPattern: address) {
                for list in 0..<level { domicile_store_word(spare + list * (upperMax + 1), 0) }
                return spare
            }
            lists.bytes += words * 4
            let fresh = UnsafeMutablePointer<UInt32>.allocate(capacity: words)
            fresh.initialize(repeating: 0, count: words)
            return fresh
        }
    }

    /// Replaces the slot's neighbours on `level`.
    func setNeighbours(_ slot: UInt32, level: Int, _ neighbours: [UInt32]) {
        withStripe(slot) { writeNeighbours(slot, level: level, neighbours) }
    }

    /// Replaces the slot's neighbours on `level` with what `body` makes of
    /// them (nil: unchanged), under the slot's stripe lock, so concurrent
    /// writers of one slot (a parallel build) lose no update.
    func updateNeighbours(_ slot: UInt32, level: Int, _ body: ([UInt32]) -> [UInt32]?) {
        withStripe(slot) {
            if let replaced = body(neighbours(slot, level: level)) { writeNeighbours(slot, level: level, replaced) }
        }
    }

    /// Writes a list between two stamp increments (the caller holds the stripe).
    private func writeNeighbours(_ slot: UInt32, level: Int, _ neighbours: [UInt32]) {
        let record = record(slot)
        let links: UnsafeMutablePointer<UInt32>
        if level == 0 {
            links = (record + Self.linksOffset).assumingMemoryBound(to: UInt32.self)
        } else {
            let top = Int((record + Self.levelOffset).load(as: UInt32.self))
            guard level <= top, let lists = upperLists(record).pointee else { preconditionFailure("slot \(slot) has no level \(level)") }
            links = lists.assumingMemoryBound(to: UInt32.self) + (level - 1) * (upperMax + 1)
        }
        precondition(neighbours.count <= (level == 0 ? level0Max : upperMax), "neighbour list over its capacity")
        let stamp = stamp(record)
        domicile_stamp_write_begin(stamp)
        for (offset, neighbour) in neighbours.enumerated() { domicile_store_word(links + offset + 1, neighbour) }
        domicile_store_word(links, UInt32(neighbours.count))
        domicile_stamp_write_end(stamp)
    }
}
