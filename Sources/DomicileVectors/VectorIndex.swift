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
/// `writer`; a batch may link on several threads, each list under its
/// slot's stripe lock); searches take no lock and run beside the writers and
/// each other, reading neighbour lists by version stamp (`SlotStorage`). A write
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
    /// Taken before `writer` by every write (`withWriter`), and held by a
    /// batch whose links are still being made in the background
    /// (`upsertAllLinkingInBackground`) until they are: a later write or a
    /// snapshot waits for them, so the index changes in the order its writes
    /// were asked for (a deadline moved does not need to wait: see
    /// `setEligibleUntil`). A semaphore, not a lock: the thread that links
    /// releases it for the thread that asked.
    private let gate = DispatchSemaphore(value: 1)

    /// Label ↔ slot. Held briefly: by the writer to publish or retire a
    /// slot, by a search to check and name its results.
    struct LabelTable {
        var slots: [String: UInt32] = [:]
        var labels: [String?] = []
        /// Labels placed by a batch still being linked in the background,
        /// not yet published: their deadlines can be moved meanwhile.
        var linking: [String: UInt32] = [:]
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
        try withWriter { (state: inout WriterState) throws(VectorError) in
            try replace(label, prepared, eligibleUntil: eligibleUntil, state: &state)
        }
    }

    /// Removes `label`; returns whether it was present. Its vector bytes are
    /// zeroed and its neighbours relinked before this returns.
    @discardableResult
    public func remove(_ label: String) -> Bool {
        withWriter { state in
            guard let slot = labels.withLock({ $0.slots[label] }) else { return false }
            retire(slot, state: &state)
            return true
        }
    }

    /// Moves `label`'s eligibility deadline (a grant renewed or shortened).
    /// A label still being linked (`upsertAllLinkingInBackground`) gets
    /// its new deadline in its slot at once: publishing it keeps it. So this
    /// never waits for links, and a grant's transaction never waits for
    /// another subject's batch.
    public func setEligibleUntil(_ label: String, _ deadline: Int64) {
        labels.withLock { table in
            guard let slot = table.slots[label] ?? table.linking[label] else { return }
            storage.setDeadline(slot, deadline)
        }
    }

    /// Runs `body` as the one writer: after any links still being made in
    /// the background, under `writer`.
    func withWriter<T, E: Error>(_ body: (inout WriterState) throws(E) -> T) throws(E) -> T {
        gate.wait()
        defer { gate.signal() }
        return try writer.withLock { (state: inout WriterState) throws(E) -> T in try body(&state) }
    }

    /// Adds or replaces many vectors, as `upsert` one by one in this order
    /// would (a label given twice ends with its last vector), linking the
    /// new ones into the graph on up to `threads` threads, as hnswlib's
    /// parallel build does: each list is written under its slot's stripe
    /// lock, and each vector becomes searchable as soon as it is linked.
    ///
    /// Every vector is checked first: a bad one throws and changes nothing.
    /// Slots, levels (drawn in this order from the index's seed) and vectors
    /// are placed on the calling thread; with one thread, or a flat index,
    /// the result is exactly that of `upsert` in this order. With more, the
    /// graph depends on how the threads interleave (its quality does not:
    /// `VectorIndexTests`).
    public func upsertAll(_ items: [VectorItem], threads: Int) throws(VectorError) {
        try withWriter { (state: inout WriterState) throws(VectorError) in
            let batch = try placeAll(items, threads: threads, state: &state)
            try linkAll(batch, threads: threads, state: &state)
        }
    }

    /// As `upsertAll`, but returns once the vectors are placed (checked,
    /// each in its slot, not yet searchable), and makes the links on other
    /// threads; the ticket is done when every vector is linked and
    /// published. Meanwhile every other write waits (`withWriter`), so
    /// writes still apply in the order they were asked for, and the caller
    /// can go on with other work: the node's writer thread stores the next
    /// transactions' rows while a batch's vectors are linked. A batch that
    /// replaces vectors already present, or any batch of a flat index or
    /// for one thread, is done before this returns.
    public func upsertAllLinkingInBackground(_ items: [VectorItem], threads: Int) throws(VectorError) -> LinkTicket {
        gate.wait()
        let batch: PlacedBatch
        do {
            batch = try writer.withLock { (state: inout WriterState) throws(VectorError) in
                let batch = try placeAll(items, threads: threads, state: &state)
                if !batch.inBackground { try linkAll(batch, threads: threads, state: &state) }
                return batch
            }
        } catch {
            gate.signal()
            throw error
        }
        guard batch.inBackground else {
            gate.signal()
            return .done
        }
        labels.withLock { table in
            for placed in batch.placed { table.linking[placed.label] = placed.slot }
        }
        let ticket = LinkTicket()
        DispatchQueue.global().async {
            self.writer.withLock { state in self.linkInParallel(batch.placed, threads: threads, state: &state) }
            self.gate.signal()
            ticket.finish()
        }
        return ticket
    }

    /// A batch's vectors checked and placed: the new labels in their slots
    /// (`placed`, to link in parallel), the rows to replace after them.
    private struct PlacedBatch: Sendable {
        var placed: [Placed] = []
        var replaced: [(item: VectorItem, vector: [Float])] = []
        /// In order, one by one, with no parallel link (a flat index, one thread).
        var sequential: [(item: VectorItem, vector: [Float])] = []

        /// Only new labels, to link in parallel: what may go on in the background.
        var inBackground: Bool { !placed.isEmpty && replaced.isEmpty && sequential.isEmpty }
    }

    /// Checks every vector, makes room for all (so running out of slots
    /// changes nothing), and places each new label in its slot.
    private func placeAll(_ items: [VectorItem], threads: Int, state: inout WriterState) throws(VectorError) -> PlacedBatch {
        var prepared: [[Float]] = []
        prepared.reserveCapacity(items.count)
        for item in items { prepared.append(try metric.prepare(item.vector, dimension: dimension)) }
        let needed = highWater.load(ordering: .relaxed) + items.count - state.free.count
        if !items.isEmpty, needed > highWater.load(ordering: .relaxed) { try storage.ensure(needed - 1) }
        var batch = PlacedBatch()
        guard usesGraph, threads > 1 else {
            batch.sequential = Array(zip(items, prepared))
            return batch
        }
        // New labels are placed and linked in parallel; a label already
        // present, or seen earlier in the batch, is replaced after them.
        var seen = Set<String>(), fresh: [Int] = []
        labels.withLock { table in
            for (row, item) in items.enumerated() {
                if table.slots[item.label] == nil, seen.insert(item.label).inserted {
                    fresh.append(row)
                } else {
                    batch.replaced.append((item, prepared[row]))
                }
            }
        }
        batch.placed.reserveCapacity(fresh.count)
        for row in fresh {
            let slot = try place(prepared[row], eligibleUntil: items[row].eligibleUntil, state: &state)
            batch.placed.append(Placed(label: items[row].label, slot: slot.slot, level: slot.level))
        }
        return batch
    }

    /// Links and publishes a placed batch, then replaces its other rows.
    private func linkAll(_ batch: PlacedBatch, threads: Int, state: inout WriterState) throws(VectorError) {
        for (item, vector) in batch.sequential { try replace(item.label, vector, eligibleUntil: item.eligibleUntil, state: &state) }
        linkInParallel(batch.placed, threads: threads, state: &state)
        for (item, vector) in batch.replaced { try replace(item.label, vector, eligibleUntil: item.eligibleUntil, state: &state) }
    }

    /// A slot filled but not yet linked nor published.
    private struct Placed: Sendable {
        let label: String
        let slot: UInt32
        let level: Int
    }

    /// Links and publishes placed slots on up to `threads` threads. The one
    /// with the highest level goes first, alone, when it is above the entry
    /// point: the entry point then never moves while links run in parallel.
    private func linkInParallel(_ placed: [Placed], threads: Int, state: inout WriterState) {
        var others = placed
        let packed = entry.load(ordering: .acquiring)
        if let top = placed.indices.max(by: { placed[$0].level < placed[$1].level }),
           packed == Self.noEntry || placed[top].level > Int(packed >> 32) {
            link(placed[top].slot, level: placed[top].level, context: writerContext(&state))
            publish(placed[top].label, placed[top].slot)
            others.remove(at: top)
        }
        let rest = others
        let next = Atomic<Int>(rest.startIndex)
        let workers = max(1, min(threads, rest.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let context = SearchContext(level0Max: storage.level0Max)
            while true {
                let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < rest.endIndex else { return }
                link(rest[index].slot, level: rest[index].level, context: context)
                publish(rest[index].label, rest[index].slot)
            }
        }
    }

    /// `upsert` under the writer lock.
    private func replace(_ label: String, _ vector: [Float], eligibleUntil: Int64, state: inout WriterState) throws(VectorError) {
        if let old = labels.withLock({ $0.slots[label] }) { retire(old, state: &state) }
        let slot = try place(vector, eligibleUntil: eligibleUntil, state: &state)
        if usesGraph { link(slot.slot, level: slot.level, context: writerContext(&state)) }
        publish(label, slot.slot)
    }

    /// Fills a free slot with a vector, its deadline and a level drawn from
    /// the index's seed, with no links yet; not searchable until published.
    private func place(_ vector: [Float], eligibleUntil: Int64, state: inout WriterState) throws(VectorError) -> (slot: UInt32, level: Int) {
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
        return (slot, level)
    }

    /// Makes a placed (and linked) slot searchable under `label`.
    private func publish(_ label: String, _ slot: UInt32) {
        labels.withLock { table in
            if table.labels.count <= Int(slot) { table.labels.append(contentsOf: repeatElement(nil, count: Int(slot) + 1 - table.labels.count)) }
            table.labels[Int(slot)] = label
            table.slots[label] = slot
            table.linking[label] = nil
            storage.setState(slot, storage.state(slot) &+ 1)
        }
        liveCount.add(1, ordering: .relaxed)
    }

    /// Retires a slot: out of the label table (so no search returns it from
    /// now on), bytes zeroed, neighbours relinked, slot free for reuse.
    private func retire(_ slot: UInt32, state: inout WriterState) {
        retireAll([slot], state: &state)
    }

    /// Retires many slots: all of them leave the label table first, so none
    /// is relinked to another that is about to go; then each is unlinked,
    /// zeroed and freed, in the order given.
    private func retireAll(_ slots: [UInt32], state: inout WriterState) {
        labels.withLock { table in
            for slot in slots {
                if let label = table.labels[Int(slot)] { table.slots[label] = nil }
                table.labels[Int(slot)] = nil
                storage.setState(slot, storage.state(slot) &+ 1)
                storage.setDeadline(slot, DeadlineChunks.never)
            }
        }
        liveCount.subtract(slots.count, ordering: .relaxed)
        for slot in slots {
            if usesGraph { unlink(slot, state: &state) }
            storage.vector(slot).update(repeating: 0, count: dimension)
            state.free.append(slot)
        }
    }

    /// Removes every label in `labels` that is present, as `retireAll` does;
    /// returns how many were.
    func removeAll(_ labels: [String]) -> Int {
        withWriter { state in
            let slots = self.labels.withLock { table in labels.compactMap { table.slots[$0] } }
            retireAll(slots, state: &state)
            return slots.count
        }
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
        let walkEF = max(ef ?? defaultEF, k + Self.spareResults)
        let plan = choosePlan(now: now, ef: walkEF)
        let candidates = withContext { context in
            prepared.withUnsafeBufferPointer { query in
                switch plan {
                case .exact: return scan(query.baseAddress!, k: k + Self.spareResults, now: now)
                case .graph: return walk(query.baseAddress!, ef: walkEF, now: now, context: context)
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

    /// The plan the planner expects to be cheaper for a walk with `ef`
    /// candidates (the collection's default when nil). The eligible count
    /// comes from the deadlines' maintained bounds when both ends lead to
    /// the same plan, else from a sample of the dense deadline array.
    func choosePlan(now: Int64, ef: Int? = nil) -> SearchPlan {
        let live = count
        guard usesGraph, live > planner.exactScanVectorsMax else { return .exact }
        let slots = highWater.load(ordering: .acquiring)
        let ef = ef ?? max(defaultEF, 10 + Self.spareResults)
        func plan(_ eligible: Int) -> SearchPlan {
            planner.plan(slots: slots, live: live, eligible: min(eligible, live), dimension: dimension, ef: ef)
        }
        let bounds = storage.deadlines.eligibleBounds
        let fewest = plan(bounds.lowerBound)
        guard plan(bounds.upperBound) != fewest else { return fewest }
        let (sampled, eligible) = storage.deadlines.sampleEligible(below: slots, samples: planner.eligibilitySampleCount, now: now)
        guard sampled > 0 else { return .exact }
        let estimate = Int((Double(eligible) / Double(sampled) * Double(slots)).rounded())
        return plan(min(max(estimate, bounds.lowerBound), bounds.upperBound))
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

    /// Scores every live, eligible slot: the dense deadline array decides
    /// which slots to read at all (an empty slot's deadline is `never`); the
    /// state is read, before the vector, only for those.
    private func scan(_ query: UnsafePointer<Float>, k: Int, now: Int64) -> [Candidate] {
        var best = DistanceHeap<FarthestFirst>(capacity: k + 1)
        storage.deadlines.forEachEligible(below: highWater.load(ordering: .acquiring), now: now) { slot in
            let state = storage.state(slot)
            guard state & 1 == 1 else { return }
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
        let kernel = DistanceKernel(metric)
        let slot = UInt32(truncatingIfNeeded: packed)
        var current = Candidate(distance: kernel(query, storage.vector(slot), count: dimension), slot: slot)
        var level = Int(packed >> 32)
        while level > 0 {
            current = greedy(query, from: current, level: level, kernel: kernel, context: context)
            level -= 1
        }
        return withUnsafePointer(to: current) { entry in
            searchLevel(query, entries: UnsafeBufferPointer(start: entry, count: 1), ef: ef, level: 0, eligibleAfter: now,
                        kernel: kernel, context: context)
        }
    }

    /// Moves to the nearest neighbour on `level` while one is nearer.
    private func greedy(_ query: UnsafePointer<Float>, from start: Candidate, level: Int, kernel: DistanceKernel,
                        context: SearchContext) -> Candidate {
        let storage = storage, dimension = dimension, scratch = context.scratch
        var current = start
        var moved = true
        while moved {
            moved = false
            let count = storage.readNeighbours(current.slot, level: level, into: scratch)
            if count > 0 { storage.prefetchVector(scratch[0]) }
            for index in 0..<count {
                let neighbour = scratch[index]
                if index &+ 1 < count { storage.prefetchVector(scratch[index &+ 1]) }
                guard storage.state(neighbour) & 1 == 1 else { continue }
                let distance = kernel(query, storage.vector(neighbour), count: dimension)
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
    ///
    /// Per expanded slot: its neighbour list is read without a lock
    /// (`SlotStorage.readNeighbours`); the unvisited, live neighbours are
    /// picked first (visited marks and states are dense arrays, so this
    /// touches no record); then the first line of each of their vectors is
    /// asked for at once, and each is scored while every line of the next
    /// one's is being fetched (on the 100k × 384 set, 12–21% more queries/s
    /// than fetching only the next one's; docs/BENCHMARKS.md).
    private func searchLevel(_ query: UnsafePointer<Float>, entries: UnsafeBufferPointer<Candidate>, ef: Int, level: Int,
                             eligibleAfter now: Int64?, kernel: DistanceKernel, context: SearchContext) -> [Candidate] {
        let visited = context.prepare(slots: highWater.load(ordering: .acquiring))
        let storage = storage, dimension = dimension
        let scratch = context.scratch, pending = context.pending, pendingStates = context.pendingStates
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
        // Without a deadline that is a time, every live slot is eligible: no
        // lookup per candidate (a deadline moved meanwhile is still caught
        // when the results are named).
        let filtered = now != nil && !storage.deadlines.allEligibleForever, cutoff = now ?? 0
        @inline(__always) func admit(_ candidate: Candidate) {
            if filtered, storage.deadline(candidate.slot) <= cutoff { return }
            results.push(candidate)
            if results.count > ef { results.pop() }
        }
        for var entry in entries where visited.insert(entry.slot) {
            frontier.push(entry)
            // The state first, then the distance again: the entry was scored
            // before its state was read, and the slot may have changed occupant
            // since; a result carries the distance of the occupant its state names.
            entry.state = storage.state(entry.slot)
            guard entry.state & 1 == 1 else { continue }
            entry.distance = kernel(query, storage.vector(entry.slot), count: dimension)
            admit(entry)
        }
        while let nearest = frontier.pop() {
            if results.count >= ef, nearest.distance > results.top!.distance { break }
            if let next = frontier.top { storage.prefetchLinks(next.slot) }
            let count = storage.readNeighbours(nearest.slot, level: level, into: scratch)
            var waiting = 0
            for index in 0..<count {
                let neighbour = scratch[index]
                guard visited.insert(neighbour) else { continue }
                let state = storage.state(neighbour)
                guard state & 1 == 1 else { continue }
                pending[waiting] = neighbour
                pendingStates[waiting] = state
                waiting &+= 1
            }
            // The first line of every pending vector is asked for at once,
            // so their misses overlap; the rest of each vector one ahead.
            for index in 0..<waiting { storage.prefetchVectorHead(pending[index]) }
            if waiting > 0 { storage.prefetchVector(pending[0]) }
            for index in 0..<waiting {
                let neighbour = pending[index]
                if index &+ 1 < waiting { storage.prefetchVector(pending[index &+ 1]) }
                let distance = kernel(query, storage.vector(neighbour), count: dimension)
                if results.count < ef || distance < results.top!.distance {
                    let candidate = Candidate(distance: distance, slot: neighbour, state: pendingStates[index])
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
    /// Safe beside other calls linking other slots (a parallel build): each
    /// list is written under its slot's stripe lock, and the entry point
    /// only moves when no other link runs (see `upsertAll`).
    private func link(_ slot: UInt32, level: Int, context: SearchContext) {
        let packed = entry.load(ordering: .acquiring)
        guard packed != Self.noEntry else {
            entry.store(UInt64(level) << 32 | UInt64(slot), ordering: .releasing)
            return
        }
        let kernel = DistanceKernel(metric)
        let query = UnsafePointer(storage.vector(slot))
        let entryLevel = Int(packed >> 32)
        let start = UInt32(truncatingIfNeeded: packed)
        var current = Candidate(distance: kernel(query, storage.vector(start), count: dimension), slot: start)
        var searchLevel = entryLevel
        while searchLevel > level {
            current = greedy(query, from: current, level: searchLevel, kernel: kernel, context: context)
            searchLevel -= 1
        }
        var entries = [current]
        for linkLevel in stride(from: min(level, entryLevel), through: 0, by: -1) {
            let found = entries.withUnsafeBufferPointer { entries in
                self.searchLevel(query, entries: entries, ef: efConstruction, level: linkLevel, eligibleAfter: nil, kernel: kernel,
                                 context: context)
            }.filter { $0.slot != slot && reaches($0.slot, linkLevel) }
            let chosen = selectNeighbours(found, max: m)
            storage.setNeighbours(slot, level: linkLevel, chosen.map(\.slot))
            for neighbour in chosen { addLink(from: neighbour.slot, to: slot, distance: neighbour.distance, level: linkLevel) }
            if !found.isEmpty { entries = found }
        }
        if level > entryLevel { entry.store(UInt64(level) << 32 | UInt64(slot), ordering: .releasing) }
    }

    private func capacity(at level: Int) -> Int { level == 0 ? storage.level0Max : storage.upperMax }

    /// Adds `to` to `from`'s list on `level`, pruning with the heuristic
    /// when the list is full (under `from`'s stripe lock).
    private func addLink(from: UInt32, to: UInt32, distance: Float, level: Int) {
        let capacity = capacity(at: level)
        storage.updateNeighbours(from, level: level) { neighbours in
            guard !neighbours.contains(to) else { return nil }
            if neighbours.count < capacity { return neighbours + [to] }
            var candidates = neighbours.map { Candidate(distance: pairDistance(from, $0), slot: $0) }
            candidates.append(Candidate(distance: distance, slot: to))
            candidates.sort(by: Candidate.nearerFirst)
            return selectNeighbours(candidates, max: capacity).map(\.slot)
        }
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

/// Scratch space one search reuses: the visited marks, the heaps, a buffer
/// for a neighbour list and one for the neighbours left to score.
final class SearchContext: @unchecked Sendable {
    var visited = VisitedSet(capacity: 0)
    var frontier = DistanceHeap<NearestFirst>(capacity: 256)
    var results = DistanceHeap<FarthestFirst>(capacity: 256)
    let scratch: UnsafeMutablePointer<UInt32>
    let pending: UnsafeMutablePointer<UInt32>
    let pendingStates: UnsafeMutablePointer<UInt32>

    init(level0Max: Int) {
        scratch = .allocate(capacity: level0Max)
        pending = .allocate(capacity: level0Max)
        pendingStates = .allocate(capacity: level0Max)
    }

    deinit {
        scratch.deallocate()
        pending.deallocate()
        pendingStates.deallocate()
    }

    /// Ready for a search over `slots` slots: the cleared marks.
    func prepare(slots: Int) -> VisitedMarks {
        if visited.capacity < slots {
            visited = VisitedSet(capacity: (slots + SlotStorage.chunkSlots) & ~(SlotStorage.chunkSlots - 1))
        }
        return visited.reset()
    }
}
