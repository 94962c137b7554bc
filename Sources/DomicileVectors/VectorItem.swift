import Synchronization

/// One vector to write in a batch (`VectorIndex.upsertAll`).
public struct VectorItem: Sendable {
    public let label: String
    public let vector: [Float]
    /// Milliseconds since the epoch (`Int64.max` for always).
    public let eligibleUntil: Int64

    public init(label: String, vector: [Float], eligibleUntil: Int64) {
        self.label = label
        self.vector = vector
        self.eligibleUntil = eligibleUntil
    }
}

/// The links of a batch being made in the background
/// (`VectorIndex.upsertAllLinkingInBackground`): done once every vector of
/// the batch is linked and searchable.
public final class LinkTicket: Sendable {
    private let state: Mutex<(done: Bool, waiting: [CheckedContinuation<Void, Never>])>

    init(done: Bool = false) {
        state = Mutex((done, []))
    }

    /// A ticket for a batch already linked.
    public static let done = LinkTicket(done: true)

    /// Returns once the batch is linked.
    public func linked() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state in
                if !state.done { state.waiting.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }

    func finish() {
        let waiting = state.withLock { state in
            state.done = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}
