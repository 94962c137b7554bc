import CPrefetch
import Synchronization

/// The memory behind an index: per slot a vector, a liveness word, an
/// eligibility deadline, a level and neighbour lists. Slots live in chunks
/// that never move once allocated, so searches read them without a global
/// lock while the writer appends new chunks.
///
/// Each slot is one record, so a search that scores a slot and later
/// expands it touches one region of memory (as hnswlib lays out its level 0):
///
///     offset                  size               field
///     0                       4                  state (atomic)
///     4                       1                  level
///     16                      4 · (1 + 2m)       level-0 links: count, then neighbours
///     upperOffset             8                  upper-level links (nil on level 0)
///     vectorOffset (32-byte)  4 · dimension      the vector
///
/// records padded to a multiple of 64 bytes (a cache line). Eligibility
/// deadlines are not in the records but in a dense array of their own
/// (`DeadlineChunks`), so an exact scan reads 8 bytes per slot it skips.
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

    private static let stateOffset = 0
    private static let levelOffset = 4
    private static let linksOffset = 16
    private let upperOffset: Int
    private let vectorOffset: Int
    /// Bytes per record.
    let stride: Int

    private let chunks: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Chunks allocated; written by the writer only.
    private var chunkCount = 0
    private let stripes: UnsafeMutablePointer<Mutex<Void>>
    /// Every slot's eligibility deadline, apart from the records.
    let deadlines = DeadlineChunks()

    init(dimension: Int, level0Max: Int, upperMax: Int) {
        self.dimension = dimension
        self.level0Max = level0Max
        self.upperMax = upperMax
        upperOffset = (Self.linksOffset + 4 * (1 + level0Max) + 7) & ~7
        vectorOffset = (upperOffset + 8 + 31) & ~31
        stride = (vectorOffset + 4 * dimension + 63) & ~63
        chunks = .allocate(capacity: Self.chunksMax)
        stripes = .allocate(capacity: Self.stripeCount)
        for index in 0..<Self.stripeCount { (stripes + index).initialize(to: Mutex(())) }
    }

    deinit {
        for index in 0..<chunkCount {
            for slot in 0..<Self.chunkSlots { upperLinks(chunks[index] + slot * stride).pointee?.deallocate() }
            chunks[index].deallocate()
        }
        chunks.deallocate()
        stripes.deinitialize(count: Self.stripeCount).deallocate()
    }

    /// Bytes of upper-level link lists (writer only).
    private var upperBytes = 0

    /// Memory held: every allocated chunk, and the upper-level lists.
    var allocatedBytes: Int { chunkCount * Self.chunkSlots * stride + upperBytes + deadlines.allocatedBytes }

    /// Slots allocated so far (writer only).
    var capacity: Int { chunkCount * Self.chunkSlots }

    /// Makes `slot` addressable (writer only).
    func ensure(_ slot: Int) throws(VectorError) {
        while slot >= capacity {
            guard chunkCount < Self.chunksMax else { throw .capacityExhausted(Self.slotsMax) }
            let chunk = UnsafeMutableRawPointer.allocate(byteCount: Self.chunkSlots * stride, alignment: 64)
            chunk.initializeMemory(as: UInt8.self, repeating: 0, count: Self.chunkSlots * stride)
            for index in 0..<Self.chunkSlots {
                let record = chunk + index * stride
                (record + Self.stateOffset).bindMemory(to: Atomic<UInt32>.self, capacity: 1).initialize(to: Atomic(0))
                (record + upperOffset).bindMemory(to: UnsafeMutablePointer<UInt32>?.self, capacity: 1).initialize(to: nil)
            }
            deadlines.append()
            chunks[chunkCount] = chunk
            chunkCount += 1
        }
    }

    @inline(__always)
    private func record(_ slot: UInt32) -> UnsafeMutableRawPointer {
        chunks[Int(slot) >> Self.chunkShift] + (Int(slot) & (Self.chunkSlots - 1)) * stride
    }

    @inline(__always)
    private func upperLinks(_ record: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?> {
        (record + upperOffset).assumingMemoryBound(to: UnsafeMutablePointer<UInt32>?.self)
    }

    // MARK: Vectors

    @inline(__always)
    func vector(_ slot: UInt32) -> UnsafeMutablePointer<Float> {
        (record(slot) + vectorOffset).assumingMemoryBound(to: Float.self)
    }

    /// Hints the cache to fetch what scoring `slot` reads first: its state
    /// (and links, same line) and the start of its vector.
    @inline(__always)
    func prefetch(_ slot: UInt32) {
        let record = record(slot)
        domicile_prefetch(record)
        domicile_prefetch(record + vectorOffset)
    }

    // MARK: Liveness and eligibility

    /// `generation << 1 | live`: the generation grows each time the slot
    /// is filled or emptied, so a search can tell the slot it scored from a
    /// later occupant of the same slot.
    @inline(__always)
    func state(_ slot: UInt32) -> UInt32 {
        (record(slot) + Self.stateOffset).assumingMemoryBound(to: Atomic<UInt32>.self).pointee.load(ordering: .acquiring)
    }

    func setState(_ slot: UInt32, _ state: UInt32) {
        (record(slot) + Self.stateOffset).assumingMemoryBound(to: Atomic<UInt32>.self).pointee.store(state, ordering: .releasing)
    }

    /// Milliseconds since the epoch until which the slot's subject is
    /// eligible to appear in results (`DeadlineChunks.never` for an empty slot).
    @inline(__always)
    func deadline(_ slot: UInt32) -> Int64 { deadlines[slot] }

    func setDeadline(_ slot: UInt32, _ deadline: Int64) { deadlines.set(slot, deadline) }

    // MARK: Levels and links

    /// Runs `body` with the slot's level and its links on `level` (count
    /// first, then the neighbours; nil when the slot has no such level),
    /// under the slot's stripe lock.
    @inline(__always)
    func withLinks<T>(_ slot: UInt32, level: Int, _ body: (Int, UnsafeMutablePointer<UInt32>?) -> T) -> T {
        stripes[Int(slot) & (Self.stripeCount - 1)].withLock { _ in
            let record = record(slot)
            let top = Int(record.load(fromByteOffset: Self.levelOffset, as: UInt8.self))
            guard level <= top else { return body(top, nil) }
            if level == 0 { return body(top, (record + Self.linksOffset).assumingMemoryBound(to: UInt32.self)) }
            return body(top, upperLinks(record).pointee! + (level - 1) * (upperMax + 1))
        }
    }

    /// Gives the slot `level` levels above level 0, all lists empty (writer only).
    func resetLinks(_ slot: UInt32, level: Int) {
        stripes[Int(slot) & (Self.stripeCount - 1)].withLock { _ in
            let record = record(slot)
            let upper = upperLinks(record)
            if let old = upper.pointee {
                old.deallocate()
                upperBytes -= Int(record.load(fromByteOffset: Self.levelOffset, as: UInt8.self)) * (upperMax + 1) * 4
            }
            upper.pointee = nil
            if level > 0 {
                upperBytes += level * (upperMax + 1) * 4
                let lists = UnsafeMutablePointer<UInt32>.allocate(capacity: level * (upperMax + 1))
                lists.initialize(repeating: 0, count: level * (upperMax + 1))
                upper.pointee = lists
            }
            record.storeBytes(of: UInt8(level), toByteOffset: Self.levelOffset, as: UInt8.self)
            record.storeBytes(of: 0, toByteOffset: Self.linksOffset, as: UInt32.self)
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
