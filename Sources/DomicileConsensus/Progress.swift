/// What a leader knows of one follower's log, and how it sends to it.
struct Progress: Sendable {
    enum State: Sendable, Equatable {
        /// Looking for the last matching index: one append at a time.
        case probe
        /// The logs match: appends stream, up to the inflight window.
        case replicate
        /// A snapshot through `index` is on its way; appends wait.
        case snapshot(index: UInt64)
    }

    /// The highest index known to match the leader's log.
    var match: UInt64 = 0
    /// The next index to send.
    var next: UInt64
    var state: State = .probe
    /// In `probe`, an append is outstanding: wait for its answer or the next
    /// heartbeat answer.
    var probeSent = false
    /// Heard from since the leader last checked its quorum.
    var recentActive = false
    /// The last index of each append in flight, oldest first.
    private(set) var inflights: [UInt64] = []
    /// Ticks spent in `snapshot`: a snapshot lost on the way is sent again
    /// after an election timeout.
    var snapshotTicks = 0

    init(next: UInt64) {
        self.next = next
    }

    func isPaused(window: Int) -> Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflights.count >= window
        case .snapshot: return true
        }
    }

    mutating func becomeProbe() {
        if case .snapshot(let index) = state {
            next = max(match, index) + 1
        } else {
            next = match + 1
        }
        state = .probe
        probeSent = false
        inflights = []
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        probeSent = false
        inflights = []
    }

    mutating func becomeSnapshot(index: UInt64) {
        state = .snapshot(index: index)
        probeSent = false
        inflights = []
        snapshotTicks = 0
    }

    /// An append through `lastIndex` left.
    mutating func sent(lastIndex: UInt64, entries: Int) {
        switch state {
        case .replicate where entries > 0:
            next = lastIndex + 1
            inflights.append(lastIndex)
        case .probe:
            probeSent = true
        default:
            break
        }
    }

    /// The follower matches through `index`; returns false for old news.
    mutating func acknowledge(_ index: UInt64) -> Bool {
        inflights.removeAll { $0 <= index }
        guard index > match else { return false }
        match = index
        next = max(next, index + 1)
        probeSent = false
        return true
    }

    /// The follower refused an append after `rejected`; it may match up to
    /// `hint`. Returns false when the refusal is old news.
    mutating func refuse(_ rejected: UInt64, hint: UInt64) -> Bool {
        switch state {
        case .replicate:
            guard rejected > match else { return false }
            becomeProbe()
            return true
        case .probe:
            guard next - 1 == rejected else { return false }
            next = max(min(rejected, hint + 1), match + 1)
            probeSent = false
            return true
        case .snapshot:
            return false
        }
    }
}
