/// A slot, its distance to the query, and the slot's state when it was
/// scored (so a result can be checked against a later occupant).
struct Candidate: Sendable {
    var distance: Float
    var slot: UInt32
    var state: UInt32 = 0

    /// Nearest first; ties by slot, so equal inputs order equally in every process.
    static func nearerFirst(_ a: Candidate, _ b: Candidate) -> Bool {
        a.distance < b.distance || (a.distance == b.distance && a.slot < b.slot)
    }
}

/// Which candidate a heap keeps on top.
protocol HeapOrder {
    static func above(_ a: Candidate, _ b: Candidate) -> Bool
}

/// The farthest on top: a result set, whose top is the one to evict.
enum FarthestFirst: HeapOrder {
    @inline(__always) static func above(_ a: Candidate, _ b: Candidate) -> Bool { a.distance > b.distance }
}

/// The nearest on top: the frontier a search expands next.
enum NearestFirst: HeapOrder {
    @inline(__always) static func above(_ a: Candidate, _ b: Candidate) -> Bool { a.distance < b.distance }
}

/// A binary heap of candidates, ordered at compile time.
struct DistanceHeap<Order: HeapOrder> {
    private(set) var items: [Candidate] = []

    init(capacity: Int) {
        items.reserveCapacity(capacity)
    }

    var count: Int { items.count }
    var isEmpty: Bool { items.isEmpty }
    var top: Candidate? { items.first }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ candidate: Candidate) {
        items.append(candidate)
        items.withUnsafeMutableBufferPointer { items in
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard Order.above(items[child], items[parent]) else { break }
                items.swapAt(child, parent)
                child = parent
            }
        }
    }

    @discardableResult
    mutating func pop() -> Candidate? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return first }
        items.withUnsafeMutableBufferPointer { items in
            items[0] = last
            var parent = 0
            let count = items.count
            while true {
                let left = 2 * parent + 1
                guard left < count else { break }
                var best = left
                if left + 1 < count, Order.above(items[left + 1], items[left]) { best = left + 1 }
                guard Order.above(items[best], items[parent]) else { break }
                items.swapAt(best, parent)
                parent = best
            }
        }
        return first
    }

    /// The candidates, nearest first.
    func sortedNearestFirst() -> [Candidate] {
        items.sorted(by: Candidate.nearerFirst)
    }
}

/// Marks of the slots one search has visited: a tag per slot, and a
/// generation that makes clearing free (`UInt16` wraps after 65 535 uses,
/// when the marks are zeroed once).
final class VisitedSet {
    private let marks: UnsafeMutablePointer<UInt16>
    let capacity: Int
    private var generation: UInt16 = 0

    init(capacity: Int) {
        self.capacity = capacity
        marks = .allocate(capacity: capacity)
        marks.initialize(repeating: 0, count: capacity)
    }

    deinit { marks.deallocate() }

    /// Clears the marks for a new search, and returns them as plain values
    /// (the search loop then reads no property of this class).
    func reset() -> VisitedMarks {
        generation &+= 1
        if generation == 0 {
            marks.update(repeating: 0, count: capacity)
            generation = 1
        }
        return VisitedMarks(marks: marks, capacity: capacity, generation: generation)
    }
}

/// One search's marks (see `VisitedSet`).
struct VisitedMarks {
    let marks: UnsafeMutablePointer<UInt16>
    let capacity: Int
    let generation: UInt16

    /// Marks `slot`; false when it was marked already, or lies beyond this
    /// set (a slot added after the search began, which it may ignore).
    @inline(__always)
    func insert(_ slot: UInt32) -> Bool {
        let index = Int(slot)
        guard index < capacity, marks[index] != generation else { return false }
        marks[index] = generation
        return true
    }
}
