import DomicileModel
import Foundation
import Synchronization

/// The vectors of one collection, in memory: exact scans and, when the
/// collection asks for one, an HNSW graph over the same slots.
///
/// Each vector carries a label (the subject's pid) and an eligibility
/// deadline: a search at time `now` returns only vectors whose deadline is
/// later. The graph walk applies that filter as it goes — ineligible vectors
/// route the walk but never enter the results — and the planner scans
/// instead when few vectors are eligible.
///
/// Concurrency: one writer at a time (inserts, removals and repairs hold
/// `writer`); searches take no global lock and run beside the writer and
/// each other, reading neighbour lists under per-slot stripe locks. A write
/// is visible to every search that starts after it returned; a removal that
/// returned is never in a result, because results are checked against the
/// label table (under its lock) before they are handed out.
public final class VectorIndex: @unchecked Sendable {
    public let dimension: Int
    public let metric: Metric
    public let kind: IndexKind
    public let planner: SearchPlanner

    let storage: SlotStorage
    /// Neighbours selected when linking (m), and level multiplier 1/ln m.
    let m: Int
    private let levelMultiplier: Double
    let efConstruction: Int
    private let defaultEF: Int

    /// `level << 32 | slot` of the entry point, or `noEntry`.
    let entry = Atomic<UInt64>(VectorIndex.noEntry)
    static let noEntry = UInt64.max
    /// One past the highest slot ever filled.
    let highWater = Atomic<Int>(0)
    let liveCount = Atomic<Int>(0)

    struct WriterState {
        var random: SeededRandom
        var free: [UInt32] = []
        var context: SearchContext?
    }

    let writer: Mutex<WriterState>

    /// Label ↔ slot. Held briefly: by the writer to publish or retire a
    /// slot, by a search to check and name its results.
    struct LabelTable {
        var slots: [String: UInt32] = [:]
        var labels: [String?] = []
    }

    let labels = Mutex(LabelTable())
    private let contexts = Mutex<[SearchContext]>([])

    public init(dimension: Int, metric: Metric, kind: IndexKind, planner: SearchPlanner = SearchPlanner()) {
        precondition(dimension > 0, "a vector index needs a positive dimension")
        self.dimension = dimension
        self.metric = metric
        self.kind = kind
        self.planner = planner
        let settings: HNSWSettings
        if case .hnsw(let hnsw) = kind {
            precondition(hnsw.problem == nil, hnsw.problem ?? "")
            settings = hnsw
        } else {
            settings = HNSWSettings(m: 2, efConstruction: 2, ef: 1)
        }
        m = settings.m
        levelMultiplier = 1 / log(Double(max(settings.m, 2)))
        efConstruction = settings.efConstruction
        defaultEF = settings.ef
        storage = SlotStorage(dimension: dimension, level0Max: 2 * settings.m, upperMax: settings.m)
        writer = Mutex(WriterState(random: SeededRandom(seed: settings.seed)))
    }

    var usesGraph: Bool { if case .hnsw = kind { return true } else { return false } }

    /// Live vectors.
    public var count: Int { liveCount.load(ordering: .relaxed) }

    public func contains(_ label: String) -> Bool { labels.withLock { $0.slots[label] != nil } }

    /// Whether `label` is present and eligible at `now`.
    public func isEligible(_ label: String, now: Int64) -> Bool {
        labels.withLock { table in table.slots[label].map { storage.deadline($0) > now } ?? false }
    }

    /// The stored (prepared) vector of `label`, for a search by example.
    public func vector(of label: String) -> [Float]? {
        labels.withLock { table in
            guard let slot = table.slots[label] else { return nil }
            return Array(UnsafeBufferPointer(start: storage.vector(slot), count: dimension))
        }
    }

    /// Up to `count` live vectors drawn at random (seeded), with their
    /// labels: the queries of a recall calibration (`RecallCalibration`).
    public func sample(_ count: Int, seed: UInt64) -> [(label: String, vector: [Float])] {
        var random = SeededRandom(seed: seed)
        return labels.withLock { table in
            let live = table.slots.count
            guard live > 0, count > 0 else { return [] }
            if count >= live {
                return table.slots.sorted { $0.value < $1.value }.map { label, slot in
                    (label, Array(UnsafeBufferPointer(start: storage.vector(slot), count: dimension)))
                }
            }
            var picked: Set<Int> = []
            var result: [(label: String, vector: [Float])] = []
            // Draws among the slots; retired slots (nil) are skipped. At most
            // a bounded number of draws, so a sparse table cannot spin.
            for _ in 0..<(count * 64) where result.count < count {
                let slot = Int(random.next() % UInt64(table.labels.count))
                guard let label = table.labels[slot], picked.insert(slot).inserted else { continue }
                result.append((label, Array(UnsafeBufferPointer(start: storage.vector(UInt32(slot)), count: dimension))))
            }
            return result
        }
    }

    // MARK: Writes

    /// Adds or replaces `label`'s vector, eligible until `eligibleUntil`
    /// (milliseconds since the epoch; `Int64.max` for always).
    public func upsert(_ label: String, vector: [Float], eligibleUntil: Int64) throws(VectorError) {
        let prepared = try metric.prepare(vector, dimension: dimension)
        try writer.withLock { (state: inout WriterState) throws(VectorError) in
            if let old = labels.withLock({ $0.slots[label] }) { retire(old, state: &state) }
            try insert(label, prepared, eligibleUntil: eligibleUntil, state: &state)
        }
    }

    /// Removes `label`; returns whether it was present. Its vector bytes are
    /// zeroed and its neighbours relinked before this returns.
    @discardableResult
    public func remove(_ label: String) -> Bool {
        writer.withLock { state in
            guard let slot = labels.withLock({ $0.slots[label] }) else { return false }
            retire(slot, state: &state)
            return true
        }
    }

    /// Moves `label`'s eligibility deadline (a grant renewed or shortened).
    public func setEligibleUntil(_ label: String, _ deadline: Int64) {
        labels.withLock { table in
            guard let slot = table.slots[label] else { return }
            storage.setDeadline(slot, deadline)
        }
    }

    private func insert(_ label: String, _ vector: [Float], eligibleUntil: Int64, state: inout WriterState) throws(VectorError) {
        let slot: UInt32
        if let reused = state.free.popLast() {
            slot = reused
        } else {
            let next = highWater.load(ordering: .relaxed)
            try storage.ensure(next)
            slot = UInt32(next)
        }
        let level = usesGraph ? drawLevel(&state.random) : 0
        vector.withUnsafeBufferPointer { storage.vector(slot).update(from: $0.baseAddress!, count: dimension) }
        storage.resetLinks(slot, level: level)
        storage.setDeadline(slot, eligibleUntil)
        if Int(slot) >= highWater.load(ordering: .relaxed) { highWater.store(Int(slot) + 1, ordering: .releasing) }
        if usesGraph { link(slot, level: level, state: &state) }
        labels.withLock { table in
            if table.labels.count <= Int(slot) { table.labels.append(contentsOf: repeatElement(nil, count: Int(slot) + 1 - table.labels.count)) }
            table.labels[Int(slot)] = label
            table.slots[label] = slot
            storage.setState(slot, storage.state(slot) &+ 1)
        }
        liveCount.add(1, ordering: .relaxed)
    }

    /// Retires a slot: out of the label table (so no search returns it from
    /// now on), bytes zeroed, neighbours relinked, slot free for reuse.
    private func retire(_ slot: UInt32, state: inout WriterState) {
        labels.withLock { table in
            if let label = table.labels[Int(slot)] { table.slots[label] = nil }
            table.labels[Int(slot)] = nil
            storage.setState(slot, storage.state(slot) &+ 1)
        }
        liveCount.subtract(1, ordering: .relaxed)
        if usesGraph { unlink(slot, state: &state) }
        storage.vector(slot).update(repeating: 0, count: dimension)
        state.free.append(slot)
    }

    private func drawLevel(_ random: inout SeededRandom) -> Int {
        // u in (0, 1]: the level is ⌊−ln u · 1/ln m⌋, capped.
        let u = (Double(random.next() >> 11) + 1) * 0x1p-53
        return min(Int(-log(u) * levelMultiplier), 16)
    }

    // MARK: Searches

    /// The `k` eligible vectors nearest to `query` at time `now`
    /// (milliseconds since the epoch), nearest first. `ef` widens a graph
    /// walk (the collection's default when nil; never below k).
    public func search(_ query: [Float], k: Int, ef: Int? = nil, now: Int64) throws(VectorError) -> SearchResult {
        let prepared = try metric.prepare(query, dimension: dimension)
        guard k > 0 else { return SearchResult(hits: [], plan: .exact) }
        let plan = choosePlan(now: now)
        let candidates = withContext { context in
            prepared.withUnsafeBufferPointer { query in
                switch plan {
                case .exact: return scan(query.baseAddress!, k: k + Self.spareResults, now: now)
                case .graph: return walk(query.baseAddress!, ef: max(ef ?? defaultEF, k + Self.spareResults), now: now, context: context)
                }
            }
        }
        return SearchResult(hits: Array(name(candidates, now: now).prefix(k)), plan: plan)
    }

    /// Candidates kept beyond k, to stand in for any removed while the
    /// search ran (those are dropped when the results are named).
    static let spareResults = 8

    /// Exact search, whatever the planner would choose (the reference for recall).
    public func exactSearch(_ query: [Float], k: Int, now: Int64) throws(VectorError) -> [SearchHit] {
        let prepared = try metric.prepare(query, dimension: dimension)
        let candidates = prepared.withUnsafeBufferPointer { scan($0.baseAddress!, k: k, now: now) }
        return name(candidates, now: now)
    }

    /// A graph walk, whatever the planner would choose (for measuring the plans).
    public func graphSearch(_ query: [Float], k: Int, ef: Int, now: Int64) throws(VectorError) -> [SearchHit] {
        precondition(usesGraph, "graphSearch on a flat index")
        let prepared = try metric.prepare(query, dimension: dimension)
        let candidates = withContext { context in
            prepared.withUnsafeBufferPointer { walk($0.baseAddress!, ef: max(ef, k), now: now, context: context) }
        }
        return Array(name(candidates, now: now).prefix(k))
    }

    func choosePlan(now: Int64) -> SearchPlan {
        guard usesGraph, count > planner.exactScanVectorsMax else { return .exact }
        let slots = highWater.load(ordering: .acquiring)
        let samples = min(planner.eligibilitySampleCount, slots)
        var live = 0, eligible = 0
        for sample in 0..<samples {
            let slot = UInt32(sample * slots / samples)
            guard storage.state(slot) & 1 == 1 else { continue }
            live += 1
            if storage.deadline(slot) > now { eligible += 1 }
        }
        guard live > 0 else { return .exact }
        return Double(eligible) / Double(live) < planner.exactScanEligibleFractionMax ? .exact : .graph
    }

    /// Checks candidates against the label table — still the same occupant
    /// of the slot, still eligible — and names them.
    private func name(_ candidates: [Candidate], now: Int64) -> [SearchHit] {
        labels.withLock { table in
            candidates.compactMap { candidate in
                let slot = candidate.slot
                guard storage.state(slot) == candidate.state, storage.deadline(slot) > now,
                      Int(slot) < table.labels.count, let label = table.labels[Int(slot)] else { return nil }
                return SearchHit(label: label, score: metric.score(distance: candidate.distance))
            }
        }
    }

    @inline(__always)
    private func distance(_ query: UnsafePointer<Float>, _ slot: UInt32) -> Float {
        metric.distance(query, storage.vector(slot), count: dimension)
    }

    /// Scores every live, eligible slot.
    private func scan(_ query: UnsafePointer<Float>, k: Int, now: Int64) -> [Candidate] {
        var best = DistanceHeap<FarthestFirst>(capacity: k + 1)
        let slots = highWater.load(ordering: .acquiring)
        for index in 0..<slots {
            let slot = UInt32(index)
            let state = storage.state(slot)
            guard state & 1 == 1, storage.deadline(slot) > now else { continue }
            let distance = distance(query, slot)
            if best.count < k {
                best.push(Candidate(distance: distance, slot: slot, state: state))
            } else if distance < best.top!.distance {
                best.pop()
                best.push(Candidate(distance: distance, slot: slot, state: state))
            }
        }
        return best.sortedNearestFirst()
    }

    /// Descends the upper levels greedily, then searches level 0 with `ef`
    /// candidates, keeping only eligible slots as results (nearest first).
    private func walk(_ query: UnsafePointer<Float>, ef: Int, now: Int64, context: SearchContext) -> [Candidate] {
        let packed = entry.load(ordering: .acquiring)
        guard packed != Self.noEntry else { return [] }
        var current = Candidate(distance: 0, slot: UInt32(truncatingIfNeeded: packed))
        current.distance = distance(query, current.slot)
        var level = Int(packed >> 32)
        while level > 0 {
            current = greedy(query, from: current, level: level, context: context)
            level -= 1
        }
        return searchLevel(query, entries: [current], ef: ef, level: 0, eligibleAfter: now, context: context)
    }

    private func greedy(_ query: UnsafePointer<Float>, from start: Candidate, level: Int, context: SearchContext) -> Candidate {
        var current = start
        var moved = true
        while moved {
            moved = false
            let count = context.copyNeighbours(of: current.slot, level: level, from: storage)
            if count > 0 { storage.prefetch(context.scratch[0]) }
            for index in 0..<count {
                let neighbour = context.scratch[index]
                if index + 1 < count { storage.prefetch(context.scratch[index + 1]) }
                guard storage.state(neighbour) & 1 == 1 else { continue }
                let distance = distance(query, neighbour)
                if distance < current.distance {
                    current = Candidate(distance: distance, slot: neighbour)
                    moved = true
                }
            }
        }
        return current
    }

    /// The beam search of the HNSW paper (its algorithm 2) on one level. With
    /// `eligibleAfter`, only slots eligible at that time become results, and
    /// the walk goes on until it holds `ef` of them or runs out of frontier.
    private func searchLevel(_ query: UnsafePointer<Float>, entries: [Candidate], ef: Int, level: Int, eligibleAfter now: Int64?,
                             context: SearchContext) -> [Candidate] {
        context.prepare(slots: highWater.load(ordering: .acquiring))
        // The heaps move out of the context for the search (no copy on write) and back after.
        var frontier = DistanceHeap<NearestFirst>(capacity: 0)
        var results = DistanceHeap<FarthestFirst>(capacity: 0)
        swap(&frontier, &context.frontier)
        swap(&results, &context.results)
        frontier.removeAll()
        results.removeAll()
        defer {
            swap(&frontier, &context.frontier)
            swap(&results, &context.results)
        }
        let filtered = now != nil, cutoff = now ?? 0
        func admit(_ candidate: Candidate) {
            if filtered, storage.deadline(candidate.slot) <= cutoff { return }
            results.push(candidate)
            if results.count > ef { results.pop() }
        }
        for var entry in entries where context.visited.insert(entry.slot) {
            frontier.push(entry)
            entry.state = storage.state(entry.slot)
            if entry.state & 1 == 1 { admit(entry) }
        }
        while let nearest = frontier.pop() {
            if results.count >= ef, nearest.distance > results.top!.distance { break }
            let count = context.copyNeighbours(of: nearest.slot, level: level, from: storage)
            if count > 0 { storage.prefetch(context.scratch[0]) }
            for index in 0..<count {
                let neighbour = context.scratch[index]
                if index + 1 < count { storage.prefetch(context.scratch[index + 1]) }
                guard context.visited.insert(neighbour) else { continue }
                let state = storage.state(neighbour)
                guard state & 1 == 1 else { continue }
                let distance = distance(query, neighbour)
                if results.count < ef || distance < results.top!.distance {
                    let candidate = Candidate(distance: distance, slot: neighbour, state: state)
                    frontier.push(candidate)
                    admit(candidate)
                }
            }
        }
        return results.sortedNearestFirst()
    }

    private func withContext<T>(_ body: (SearchContext) -> T) -> T {
        let context = contexts.withLock { $0.popLast() } ?? SearchContext(level0Max: storage.level0Max)
        defer { contexts.withLock { $0.append(context) } }
        return body(context)
    }

    // MARK: Graph maintenance (writer only)

    private func writerContext(_ state: inout WriterState) -> SearchContext {
        if let context = state.context { return context }
        let context = SearchContext(level0Max: storage.level0Max)
        state.context = context
        return context
    }

    private func isLive(_ slot: UInt32) -> Bool { storage.state(slot) & 1 == 1 }

    /// Whether the slot has `level`. A link may be stale: a freed slot is
    /// reused with a new level, and links that pointed at its old occupant
    /// (from nodes that were not its neighbours) stay until pruned.
    private func reaches(_ slot: UInt32, _ level: Int) -> Bool { level == 0 || storage.level(slot) >= level }

    private func pairDistance(_ a: UInt32, _ b: UInt32) -> Float {
        metric.distance(storage.vector(a), storage.vector(b), count: dimension)
    }

    /// Links a filled slot into the graph (the HNSW paper's algorithm 1).
    private func link(_ slot: UInt32, level: Int, state: inout WriterState) {
        let packed = entry.load(ordering: .acquiring)
        guard packed != Self.noEntry else {
            entry.store(UInt64(level) << 32 | UInt64(slot), ordering: .releasing)
            return
        }
        let context = writerContext(&state)
        let query = storage.vector(slot)
        let entryLevel = Int(packed >> 32)
        var current = Candidate(distance: 0, slot: UInt32(truncatingIfNeeded: packed))
        current.distance = distance(query, current.slot)
        var searchLevel = entryLevel
        while searchLevel > level {
            current = greedy(query, from: current, level: searchLevel, context: context)
            searchLevel -= 1
        }
        var entries = [current]
        for linkLevel in stride(from: min(level, entryLevel), through: 0, by: -1) {
            let found = self.searchLevel(query, entries: entries, ef: efConstruction, level: linkLevel, eligibleAfter: nil,
                                         context: context).filter { $0.slot != slot && reaches($0.slot, linkLevel) }
            let chosen = selectNeighbours(found, max: m)
            storage.setNeighbours(slot, level: linkLevel, chosen.map(\.slot))
            for neighbour in chosen { addLink(from: neighbour.slot, to: slot, distance: neighbour.distance, level: linkLevel) }
            if !found.isEmpty { entries = found }
        }
        if level > entryLevel { entry.store(UInt64(level) << 32 | UInt64(slot), ordering: .releasing) }
    }

    private func capacity(at level: Int) -> Int { level == 0 ? storage.level0Max : storage.upperMax }

    /// Adds `to` to `from`'s list on `level`, pruning with the heuristic
    /// when the list is full.
    private func addLink(from: UInt32, to: UInt32, distance: Float, level: Int) {
        var neighbours = storage.neighbours(from, level: level)
        guard !neighbours.contains(to) else { return }
        if neighbours.count < capacity(at: level) {
            neighbours.append(to)
            storage.setNeighbours(from, level: level, neighbours)
            return
        }
        var candidates = neighbours.map { Candidate(distance: pairDistance(from, $0), slot: $0) }
        candidates.append(Candidate(distance: distance, slot: to))
        candidates.sort(by: Candidate.nearerFirst)
        storage.setNeighbours(from, level: level, selectNeighbours(candidates, max: capacity(at: level)).map(\.slot))
    }

    /// The neighbour-selection heuristic (the HNSW paper's algorithm 4):
    /// a candidate is kept only when it is nearer to the base than to every
    /// neighbour kept before it, so links spread in all directions.
    /// `candidates` come nearest first.
    private func selectNeighbours(_ candidates: [Candidate], max: Int) -> [Candidate] {
        guard candidates.count > max else { return candidates }
        var kept: [Candidate] = []
        kept.reserveCapacity(max)
        for candidate in candidates where kept.count < max {
            if kept.allSatisfy({ pairDistance(candidate.slot, $0.slot) >= candidate.distance }) { kept.append(candidate) }
        }
        return kept
    }

    /// Takes a retired slot out of the graph: each neighbour that linked to
    /// it is relinked among its own and the slot's other neighbours, and the
    /// entry point moves if it was this slot.
    private func unlink(_ slot: UInt32, state: inout WriterState) {
        let top = storage.level(slot)
        for level in 0...top {
            let around = storage.neighbours(slot, level: level).filter { isLive($0) && reaches($0, level) }
            for neighbour in around {
                let own = storage.neighbours(neighbour, level: level)
                guard own.contains(slot) else { continue }
                var pool = Set(own).union(around)
                pool.remove(slot)
                pool.remove(neighbour)
                var candidates: [Candidate] = []
                for other in pool where isLive(other) && reaches(other, level) {
                    candidates.append(Candidate(distance: pairDistance(neighbour, other), slot: other))
                }
                candidates.sort(by: Candidate.nearerFirst)
                storage.setNeighbours(neighbour, level: level, selectNeighbours(candidates, max: capacity(at: level)).map(\.slot))
            }
        }
        // The slot keeps its own links until it is reused: a search that
        // entered the graph through it can still walk on from it.
        let packed = entry.load(ordering: .acquiring)
        if packed != Self.noEntry, UInt32(truncatingIfNeeded: packed) == slot { entry.store(newEntry(), ordering: .releasing) }
    }

    /// The live slot with the highest level, or `noEntry`.
    private func newEntry() -> UInt64 {
        var best = Self.noEntry
        var bestLevel = -1
        for index in 0..<highWater.load(ordering: .relaxed) {
            let slot = UInt32(index)
            guard storage.state(slot) & 1 == 1 else { continue }
            let level = storage.level(slot)
            if level > bestLevel {
                bestLevel = level
                best = UInt64(level) << 32 | UInt64(slot)
            }
        }
        return best
    }

    // MARK: Memory

    /// Bytes held per live vector: vectors, links, levels, states and
    /// deadlines of every allocated slot, divided by the live count.
    public var bytesPerVector: Double {
        let live = count
        guard live > 0 else { return 0 }
        return Double(storage.allocatedBytes) / Double(live)
    }
}

/// Scratch space one search reuses: the visited marks, the heaps and a
/// buffer for a copied neighbour list.
final class SearchContext: @unchecked Sendable {
    var visited = VisitedSet(capacity: 0)
    var frontier = DistanceHeap<NearestFirst>(capacity: 256)
    var results = DistanceHeap<FarthestFirst>(capacity: 256)
    let scratch: UnsafeMutablePointer<UInt32>

    init(level0Max: Int) {
        scratch = .allocate(capacity: level0Max)
    }

    deinit { scratch.deallocate() }

    /// Ready for a search over `slots` slots.
    func prepare(slots: Int) {
        if visited.capacity < slots {
            visited = VisitedSet(capacity: (slots + SlotStorage.chunkSlots) & ~(SlotStorage.chunkSlots - 1))
        }
        visited.reset()
    }

    /// Copies the slot's neighbours on `level` into `scratch`; returns how many.
    @inline(__always)
    func copyNeighbours(of slot: UInt32, level: Int, from storage: SlotStorage) -> Int {
        storage.withLinks(slot, level: level) { _, links in
            guard let links else { return 0 }
            let count = Int(links[0])
            scratch.update(from: links + 1, count: count)
            return count
        }
    }
}
