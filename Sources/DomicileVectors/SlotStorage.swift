import CPrefetch
import Synchronization

/// The memory behind an index: per slot a vector, a liveness word, an
/// eligibility deadline, a level and neighbour lists. Slots live in chunks
/// that never move once allocated, so searches read them without a global
/// lock while the writer appends new chunks.
///
/// Who may touch what:
/// - `state` and `deadline` are atomics, read by anyone.
/// - A slot's level and neighbour lists change only under its stripe lock
///   (`withLinks`), which readers take too while copying a list.
/// - A slot's vector is written by the writer before the slot becomes
///   reachable (a link to it is published under a stripe lock, or the entry
///   point with release ordering), and zeroed after it stopped being live.
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

    private struct Chunk {
        let vectors: UnsafeMutablePointer<Float>
        let level0: UnsafeMutablePointer<UInt32>
        let upper: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>
        let levels: UnsafeMutablePointer<UInt8>
        let states: UnsafeMutablePointer<Atomic<UInt32>>
        let deadlines: UnsafeMutablePointer<Atomic<Int64>>
    }

    private let chunks: UnsafeMutablePointer<Chunk>
    /// Chunks allocated; written by the writer only.
    private var chunkCount = 0
    private let stripes: UnsafeMutablePointer<Mutex<Void>>

    init(dimension: Int, level0Max: Int, upperMax: Int) {
        self.dimension = dimension
        self.level0Max = level0Max
        self.upperMax = upperMax
        chunks = .allocate(capacity: Self.chunksMax)
        stripes = .allocate(capacity: Self.stripeCount)
        for index in 0..<Self.stripeCount { (stripes + index).initialize(to: Mutex(())) }
    }

    deinit {
        for index in 0..<chunkCount {
            let chunk = chunks[index]
            for slot in 0..<Self.chunkSlots { chunk.upper[slot]?.deallocate() }
            chunk.vectors.deallocate()
            chunk.level0.deallocate()
            chunk.upper.deallocate()
            chunk.levels.deallocate()
            chunk.states.deinitialize(count: Self.chunkSlots).deallocate()
            chunk.deadlines.deinitialize(count: Self.chunkSlots).deallocate()
        }
        chunks.deallocate()
        stripes.deinitialize(count: Self.stripeCount).deallocate()
    }

    /// Bytes of upper-level link lists (writer only).
    private var upperBytes = 0

    /// Memory held: every allocated chunk, and the upper-level lists.
    var allocatedBytes: Int {
        let perSlot = dimension * 4 + (level0Max + 1) * 4 + MemoryLayout<UnsafeMutablePointer<UInt32>?>.stride + 1 + 4 + 8
        return chunkCount * Self.chunkSlots * perSlot + upperBytes
    }

    /// Slots allocated so far (writer only).
    var capacity: Int { chunkCount * Self.chunkSlots }

    /// Makes `slot` addressable (writer only).
    func ensure(_ slot: Int) throws(VectorError) {
        while slot >= capacity {
            guard chunkCount < Self.chunksMax else { throw .capacityExhausted(Self.slotsMax) }
            let count = Self.chunkSlots
            let vectors = UnsafeMutablePointer<Float>.allocate(capacity: count * dimension)
            vectors.initialize(repeating: 0, count: count * dimension)
            let level0 = UnsafeMutablePointer<UInt32>.allocate(capacity: count * (level0Max + 1))
            level0.initialize(repeating: 0, count: count * (level0Max + 1))
            let upper = UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>.allocate(capacity: count)
            upper.initialize(repeating: nil, count: count)
            let levels = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
            levels.initialize(repeating: 0, count: count)
            let states = UnsafeMutablePointer<Atomic<UInt32>>.allocate(capacity: count)
            let deadlines = UnsafeMutablePointer<Atomic<Int64>>.allocate(capacity: count)
            for index in 0..<count {
                (states + index).initialize(to: Atomic(0))
                (deadlines + index).initialize(to: Atomic(0))
            }
            chunks[chunkCount] = Chunk(vectors: vectors, level0: level0, upper: upper, levels: levels, states: states,
                                       deadlines: deadlines)
            chunkCount += 1
        }
    }

    @inline(__always)
    private func chunk(_ slot: UInt32) -> (Chunk, Int) {
        (chunks[Int(slot) >> Self.chunkShift], Int(slot) & (Self.chunkSlots - 1))
    }

    // MARK: Vectors

    @inline(__always)
    func vector(_ slot: UInt32) -> UnsafeMutablePointer<Float> {
        let (chunk, index) = chunk(slot)
        return chunk.vectors + index * dimension
    }

    /// Hints the cache to fetch what scoring `slot` reads first: its state
    /// and the start of its vector.
    @inline(__always)
    func prefetch(_ slot: UInt32) {
        let (chunk, index) = chunk(slot)
        domicile_prefetch(chunk.vectors + index * dimension)
        domicile_prefetch(chunk.states + index)
    }

    // MARK: Liveness and eligibility

    /// `generation << 1 | live`: the generation grows each time the slot
    /// is filled or emptied, so a search can tell the slot it scored from a
    /// later occupant of the same slot.
    @inline(__always)
    func state(_ slot: UInt32) -> UInt32 {
        let (chunk, index) = chunk(slot)
        return chunk.states[index].load(ordering: .acquiring)
    }

    func setState(_ slot: UInt32, _ state: UInt32) {
        let (chunk, index) = chunk(slot)
        chunk.states[index].store(state, ordering: .releasing)
    }

    /// Milliseconds since the epoch until which the slot's subject is
    /// eligible to appear in results.
    @inline(__always)
    func deadline(_ slot: UInt32) -> Int64 {
        let (chunk, index) = chunk(slot)
        return chunk.deadlines[index].load(ordering: .relaxed)
    }

    func setDeadline(_ slot: UInt32, _ deadline: Int64) {
        let (chunk, index) = chunk(slot)
        chunk.deadlines[index].store(deadline, ordering: .relaxed)
    }

    // MARK: Levels and links

    /// Runs `body` with the slot's level and its links on `level` (count
    /// first, then the neighbours; nil when the slot has no such level),
    /// under the slot's stripe lock.
    @inline(__always)
    func withLinks<T>(_ slot: UInt32, level: Int, _ body: (Int, UnsafeMutablePointer<UInt32>?) -> T) -> T {
        stripes[Int(slot) & (Self.stripeCount - 1)].withLock { _ in
            let (chunk, index) = chunk(slot)
            let top = Int(chunk.levels[index])
            guard level <= top else { return body(top, nil) }
            if level == 0 { return body(top, chunk.level0 + index * (level0Max + 1)) }
            return body(top, chunk.upper[index]! + (level - 1) * (upperMax + 1))
        }
    }

    /// Gives the slot `level` levels above level 0, all lists empty (writer only).
    func resetLinks(_ slot: UInt32, level: Int) {
        stripes[Int(slot) & (Self.stripeCount - 1)].withLock { _ in
            let (chunk, index) = chunk(slot)
            if let old = chunk.upper[index] {
                old.deallocate()
                upperBytes -= Int(chunk.levels[index]) * (upperMax + 1) * 4
            }
            chunk.upper[index] = nil
            if level > 0 {
                upperBytes += level * (upperMax + 1) * 4
                let upper = UnsafeMutablePointer<UInt32>.allocate(capacity: level * (upperMax + 1))
                upper.initialize(repeating: 0, count: level * (upperMax + 1))
                chunk.upper[index] = upper
            }
            chunk.levels[index] = UInt8(level)
            chunk.level0[index * (level0Max + 1)] = 0
        }
    }

    /// The level of a slot (writer only, or a hint for readers).
    func level(_ slot: UInt32) -> Int { withLinks(slot, level: 0) { top, _ in top } }

    /// A copy of the slot's neighbours on `level`.
    func neighbours(_ slot: UInt32, level: Int) -> [UInt32] {
        withLinks(slot, level: level) { _, links in
            guard let links else { return [] }
            return Array(UnsafeBufferPointer(start: links + 1, count: Int(links[0])))
        }
    }

    /// Replaces the slot's neighbours on `level` (writer only).
    func setNeighbours(_ slot: UInt32, level: Int, _ neighbours: [UInt32]) {
        withLinks(slot, level: level) { _, links in
            guard let links else { preconditionFailure("slot \(slot) has no level \(level)") }
            precondition(neighbours.count <= (level == 0 ? level0Max : upperMax), "neighbour list over its capacity")
            for (offset, neighbour) in neighbours.enumerated() { links[offset + 1] = neighbour }
            links[0] = UInt32(neighbours.count)
        }
    }
}
