import DomicileModel

/// Why a saved graph was refused. Every refusal is typed: the bytes come
/// from disk, and a damaged, truncated or foreign file is rebuilt from
/// scratch rather than trusted.
public enum GraphSnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes end before what they announce.
    case truncated
    case unsupportedFormat(UInt8)
    /// Saved for another dimension, metric or graph setting than the collection's.
    case shapeMismatch(String)
    /// A count beyond what a graph can hold (or the bytes could carry).
    case limitExceeded(String)
    /// The parts do not fit together (a link past the last slot, a live
    /// slot without a label, a duplicate label…).
    case inconsistent(String)
    case trailingBytes

    public var description: String {
        switch self {
        case .truncated: return "the saved graph is truncated"
        case .unsupportedFormat(let format): return "saved graph format \(format) is not supported"
        case .shapeMismatch(let what): return "the saved graph is for another \(what)"
        case .limitExceeded(let what): return "the saved graph's \(what) is over its limit"
        case .inconsistent(let what): return "the saved graph is inconsistent: \(what)"
        case .trailingBytes: return "the saved graph has trailing bytes"
        }
    }
}

/// A vector index's graph as bytes (docs/FORMATS.md, "Graph snapshot"):
/// each slot's liveness word, level, label and links, the free list, the
/// entry point and the level draw's generator — everything but the vectors
/// and the eligibility deadlines, which the caller keeps elsewhere (sealed
/// in SQLite, recomputed from consent) and puts back with `GraphRestore`.
/// Restored and then given the same inserts in the same order, an index
/// builds the same graph as the one that was saved.
public enum GraphSnapshot {
    public static let format: UInt8 = 1
    /// Highest level a slot can have (`VectorIndex` caps its draw at 16).
    static let levelMax = 16
    static let labelBytesMax = 4_096
    static let dimensionMax = 65_536
    /// Bytes the smallest slot takes (state, level, empty label, empty level-0 list).
    static let slotBytesMin = 4 + 1 + 2 + 1
}

extension VectorIndex {
    /// The graph as bytes, with `position` (what the caller's store had
    /// applied when the graph was in this state) carried along. Taken under
    /// the writer lock, so it is one consistent state: writes wait for it
    /// (one pass over the slots), searches do not. Nil when a label cannot
    /// be saved (empty, or over 4 096 bytes of UTF-8).
    public func snapshotGraph(position: UInt64) -> [UInt8]? {
        withWriter { state in
            let table = labels.withLock { $0 }
            let slots = highWater.load(ordering: .acquiring)
            var out = GraphWriter(capacity: 64 + 4 * state.free.count + slots * (80 + 4 * storage.level0Max))
            out.u8(GraphSnapshot.format)
            out.u32(UInt32(dimension))
            out.text(metric.rawValue)
            out.u8(usesGraph ? 1 : 0)
            out.u16(UInt16(usesGraph ? m : 0))
            out.u16(UInt16(usesGraph ? efConstruction : 0))
            out.u64(position)
            for word in state.random.stateWords { out.u64(word) }
            out.u64(entry.load(ordering: .acquiring))
            out.u32(UInt32(slots))
            out.u32(UInt32(liveCount.load(ordering: .relaxed)))
            out.u32(UInt32(state.free.count))
            for slot in state.free { out.u32(slot) }
            for index in 0..<slots {
                let slot = UInt32(index)
                let level = storage.level(slot)
                let label = index < table.labels.count ? table.labels[index] : nil
                if let label, label.isEmpty || label.utf8.count > GraphSnapshot.labelBytesMax { return nil }
                out.u32(storage.state(slot))
                out.u8(UInt8(level))
                out.text(label ?? "")
                for linkLevel in 0...level {
                    let neighbours = storage.neighbours(slot, level: linkLevel)
                    out.u8(UInt8(neighbours.count))
                    for neighbour in neighbours { out.u32(neighbour) }
                }
            }
            return out.bytes
        }
    }

    /// A new index holding the graph `bytes` describe, its slots without
    /// vectors yet (put them back with `place`, then `finish`). Refuses,
    /// with a typed error and never a trap, bytes that are not a graph of
    /// this shape (`dimension`, `metric`, `kind`'s m and ef_construction).
    public static func restoring(_ bytes: [UInt8], dimension: Int, metric: Metric, kind: IndexKind,
                                 planner: SearchPlanner = SearchPlanner()) throws(GraphSnapshotError) -> GraphRestore {
        var input = GraphReader(bytes)
        let format = try input.u8()
        guard format == GraphSnapshot.format else { throw .unsupportedFormat(format) }
        let savedDimension = Int(try input.u32())
        let savedMetric = try input.text()
        let savedGraph = try input.u8()
        let savedM = Int(try input.u16()), savedEF = Int(try input.u16())
        guard savedDimension == dimension else { throw .shapeMismatch("dimension") }
        guard savedMetric == metric.rawValue else { throw .shapeMismatch("metric") }
        switch kind {
        case .flat:
            guard savedGraph == 0, savedM == 0, savedEF == 0 else { throw .shapeMismatch("index kind") }
        case .hnsw(let settings):
            guard settings.problem == nil else { throw .shapeMismatch("index kind") }
            guard savedGraph == 1 else { throw .shapeMismatch("index kind") }
            guard savedM == settings.m, savedEF == settings.efConstruction else { throw .shapeMismatch("m or ef_construction") }
        }
        guard dimension > 0, dimension <= GraphSnapshot.dimensionMax else { throw .limitExceeded("dimension") }
        let index = VectorIndex(dimension: dimension, metric: metric, kind: kind, planner: planner)
        let position = try input.u64()
        var words: [UInt64] = []
        for _ in 0..<4 { words.append(try input.u64()) }
        guard let random = SeededRandom(stateWords: words) else { throw .inconsistent("the level draw's state is zero") }
        let entry = try input.u64()
        let slots = Int(try input.u32())
        let live = Int(try input.u32())
        guard slots <= SlotStorage.slotsMax else { throw .limitExceeded("slot count") }
        guard slots <= input.remaining / GraphSnapshot.slotBytesMin else { throw .truncated }
        guard live <= slots else { throw .inconsistent("more live slots than slots") }
        let freeCount = Int(try input.u32())
        guard freeCount == slots - live else { throw .inconsistent("the free list is not every retired slot") }
        guard freeCount <= input.remaining / 4 else { throw .truncated }
        var free: [UInt32] = []
        free.reserveCapacity(freeCount)
        var isFree = [Bool](repeating: false, count: slots)
        for _ in 0..<freeCount {
            let slot = try input.u32()
            guard Int(slot) < slots, !isFree[Int(slot)] else { throw .inconsistent("a free slot out of range or listed twice") }
            isFree[Int(slot)] = true
            free.append(slot)
        }
        if slots > 0 {
            do { try index.storage.ensure(slots - 1) } catch { throw .limitExceeded("slot count") }
        }
        var table = LabelTable()
        table.labels = [String?](repeating: nil, count: slots)
        table.slots.reserveCapacity(live)
        var levels = [UInt8](repeating: 0, count: slots)
        for position in 0..<slots {
            let slot = UInt32(position)
            let state = try input.u32()
            let level = Int(try input.u8())
            let label = try input.text()
            guard level <= (index.usesGraph ? GraphSnapshot.levelMax : 0) else { throw .limitExceeded("level") }
            let isLive = state & 1 == 1
            guard isLive != isFree[position] else { throw .inconsistent("a slot both live and free, or neither") }
            guard isLive == !label.isEmpty else { throw .inconsistent("a live slot without a label, or a retired one with one") }
            if isLive {
                guard table.slots.updateValue(slot, forKey: label) == nil else { throw .inconsistent("a label held by two slots") }
                table.labels[position] = label
            }
            index.storage.resetLinks(slot, level: level)
            levels[position] = UInt8(level)
            for linkLevel in 0...level {
                let count = Int(try input.u8())
                guard count <= (linkLevel == 0 ? index.storage.level0Max : index.storage.upperMax), index.usesGraph || count == 0 else {
                    throw .limitExceeded("neighbour count")
                }
                var neighbours: [UInt32] = []
                neighbours.reserveCapacity(count)
                for _ in 0..<count {
                    let neighbour = try input.u32()
                    guard Int(neighbour) < slots else { throw .inconsistent("a link past the last slot") }
                    neighbours.append(neighbour)
                }
                index.storage.setNeighbours(slot, level: linkLevel, neighbours)
            }
            index.storage.setState(slot, state)
        }
        guard input.remaining == 0 else { throw .trailingBytes }
        guard table.slots.count == live else { throw .inconsistent("the live count") }
        if entry == VectorIndex.noEntry {
            guard live == 0 || !index.usesGraph else { throw .inconsistent("no entry point for a graph with live slots") }
        } else {
            let slot = Int(UInt32(truncatingIfNeeded: entry)), level = Int(entry >> 32)
            guard index.usesGraph, slot < slots, !isFree[slot], Int(levels[slot]) == level else { throw .inconsistent("the entry point") }
        }
        index.withWriter { state in
            state.random = random
            state.free = free
        }
        index.labels.withLock { $0 = table }
        index.entry.store(entry, ordering: .releasing)
        index.highWater.store(slots, ordering: .releasing)
        index.liveCount.store(live, ordering: .relaxed)
        return GraphRestore(index: index, position: position, slots: slots)
    }
}

/// A restored graph waiting for its vectors: `place` puts back each live
/// slot's vector (as the caller's store holds it, for the label the slot
/// held when the graph was saved); `finish` retires the live slots nobody
/// placed (removed or rewritten since), in slot order. Until then nothing
/// in it is eligible (deadlines are `DeadlineChunks.never`): it is not searched.
public final class GraphRestore {
    public let index: VectorIndex
    /// What the caller passed to `snapshotGraph(position:)`.
    public let position: UInt64
    private var placed: [Bool]
    public private(set) var placedCount = 0

    init(index: VectorIndex, position: UInt64, slots: Int) {
        self.index = index
        self.position = position
        placed = [Bool](repeating: false, count: slots)
    }

    /// Puts `label`'s vector back into the slot the graph gave it; false
    /// when no live slot holds `label`, or it was placed already.
    public func place(_ label: String, vector: [Float], eligibleUntil: Int64) throws(VectorError) -> Bool {
        let prepared = try index.metric.prepare(vector, dimension: index.dimension)
        guard let slot = index.labels.withLock({ $0.slots[label] }), !placed[Int(slot)] else { return false }
        placed[Int(slot)] = true
        placedCount += 1
        prepared.withUnsafeBufferPointer { index.storage.vector(slot).update(from: $0.baseAddress!, count: index.dimension) }
        index.storage.setDeadline(slot, eligibleUntil)
        return true
    }

    /// Retires every live slot that got no vector (removed or rewritten
    /// since the save): all leave the label table first, so no neighbour is
    /// relinked to another that is going too; then each is unlinked and
    /// freed, in slot order. Returns how many. The index is then ready for
    /// the writes made after the graph was saved, in their order.
    @discardableResult
    public func finish() -> Int {
        let unplaced = index.labels.withLock { table in
            table.labels.indices.compactMap { slot in placed[slot] ? nil : table.labels[slot] }
        }
        return index.removeAll(unplaced)
    }
}

/// Big-endian bytes out.
struct GraphWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }

    /// A u16 byte count, then UTF-8 (callers keep labels within `labelBytesMax`).
    mutating func text(_ value: String) {
        u16(UInt16(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }
}

/// Big-endian bytes in, every read bounds-checked.
struct GraphReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int) throws(GraphSnapshotError) -> ArraySlice<UInt8> {
        guard count <= remaining else { throw .truncated }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    private mutating func unsigned(_ count: Int) throws(GraphSnapshotError) -> UInt64 {
        try take(count).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func u8() throws(GraphSnapshotError) -> UInt8 { UInt8(try unsigned(1)) }
    mutating func u16() throws(GraphSnapshotError) -> UInt16 { UInt16(try unsigned(2)) }
    mutating func u32() throws(GraphSnapshotError) -> UInt32 { UInt32(try unsigned(4)) }
    mutating func u64() throws(GraphSnapshotError) -> UInt64 { try unsigned(8) }

    mutating func bytes(_ count: Int) throws(GraphSnapshotError) -> [UInt8] { Array(try take(count)) }

    mutating func text() throws(GraphSnapshotError) -> String {
        let count = Int(try u16())
        guard count <= GraphSnapshot.labelBytesMax else { throw .limitExceeded("label length") }
        let utf8 = try take(count)
        guard let text = String(validating: utf8, as: UTF8.self) else { throw .inconsistent("a label is not UTF-8") }
        return text
    }
}

/// The framing of a saved graph on disk (docs/FORMATS.md, "Graph snapshot
/// file"): a clear header, then the graph's bytes cut into chunks, each
/// sealed by the caller (the node seals them under its region data key).
/// This layer only cuts and frames, and parses a file's frames with every
/// count bounded before anything is allocated.
public enum GraphSnapshotFile {
    public static let magic: [UInt8] = Array("DMGS".utf8)
    public static let format: UInt8 = 1
    /// Plaintext bytes per chunk at most (AES-GCM through OpenSSL takes an
    /// `int` length; chunks also keep each seal's buffers small).
    public static let chunkBytesMax = 16 << 20
    /// Bytes a sealed chunk may add to its plaintext (the envelope's header and tag).
    public static let sealOverheadMax = 64
    public static let chunkCountMax = 1 << 16
    static let headerBytes = 4 + 1 + 4

    /// The plaintext cut into chunks of at most `chunkBytesMax` (one, empty, for no bytes).
    public static func chunks(of plaintext: [UInt8]) -> [ArraySlice<UInt8>] {
        guard !plaintext.isEmpty else { return [plaintext[...]] }
        return stride(from: 0, to: plaintext.count, by: chunkBytesMax).map { plaintext[$0..<min($0 + chunkBytesMax, plaintext.count)] }
    }

    /// The file: header, then each sealed chunk as a u32 length and its bytes.
    public static func frame(_ sealed: [[UInt8]]) -> [UInt8] {
        var out = GraphWriter(capacity: headerBytes + sealed.reduce(0) { $0 + 4 + $1.count })
        for byte in magic { out.u8(byte) }
        out.u8(format)
        out.u32(UInt32(sealed.count))
        for chunk in sealed {
            out.u32(UInt32(chunk.count))
            out.append(chunk)
        }
        return out.bytes
    }

    /// The sealed chunks of a file, in order, as framed (not opened).
    public static func sealedChunks(of file: [UInt8]) throws(GraphSnapshotError) -> [[UInt8]] {
        var input = GraphReader(file)
        for byte in magic { guard try input.u8() == byte else { throw .inconsistent("not a saved graph (magic)") } }
        let format = try input.u8()
        guard format == Self.format else { throw .unsupportedFormat(format) }
        let count = Int(try input.u32())
        guard count >= 1, count <= chunkCountMax else { throw .limitExceeded("chunk count") }
        guard count <= input.remaining / 4 else { throw .truncated }
        var chunks: [[UInt8]] = []
        chunks.reserveCapacity(count)
        for _ in 0..<count {
            let length = Int(try input.u32())
            guard length <= chunkBytesMax + sealOverheadMax else { throw .limitExceeded("chunk length") }
            chunks.append(try input.bytes(length))
        }
        guard input.remaining == 0 else { throw .trailingBytes }
        return chunks
    }
}
