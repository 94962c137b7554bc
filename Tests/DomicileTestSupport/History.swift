import Foundation

/// What a Jepsen-style client asked a node to do. Feature values and vector
/// ids are unique over a run, so a value read back names the one write that
/// produced it.
public enum RegionOperation: Sendable, Hashable, CustomStringConvertible {
    case register(identifier: String)
    case grant(pid: String, purpose: String)
    case revoke(pid: String, purpose: String)
    /// One feature, one unique integer value.
    case writeFeature(pid: String, feature: String, value: Int)
    /// The vector `[id, 0, 0, …]`: its distance to the origin is its id.
    case upsertVector(pid: String, collection: String, id: Int)
    case readFeatures(pid: String, purpose: String)
    case readConsent(pid: String)
    case search(collection: String, purpose: String)
    /// `GET /readyz`, probed by the nemesis.
    case readiness

    public var isWrite: Bool {
        switch self {
        case .register, .grant, .revoke, .writeFeature, .upsertVector: return true
        case .readFeatures, .readConsent, .search, .readiness: return false
        }
    }

    /// The subject the operation is about, if one.
    public var pid: String? {
        switch self {
        case .grant(let pid, _), .revoke(let pid, _), .writeFeature(let pid, _, _), .upsertVector(let pid, _, _),
             .readFeatures(let pid, _), .readConsent(let pid):
            return pid
        case .register, .search, .readiness: return nil
        }
    }

    public var description: String {
        switch self {
        case .register(let identifier): return "register \(identifier)"
        case .grant(let pid, let purpose): return "grant \(purpose) \(pid)"
        case .revoke(let pid, let purpose): return "revoke \(purpose) \(pid)"
        case .writeFeature(let pid, let feature, let value): return "write \(feature)=\(value) \(pid)"
        case .upsertVector(let pid, let collection, let id): return "upsert \(collection)#\(id) \(pid)"
        case .readFeatures(let pid, let purpose): return "read features \(purpose) \(pid)"
        case .readConsent(let pid): return "read consent \(pid)"
        case .search(let collection, let purpose): return "search \(collection) for \(purpose)"
        case .readiness: return "readyz"
        }
    }
}

/// What an acknowledged operation returned.
public enum RegionValue: Sendable, Hashable, CustomStringConvertible {
    case none
    case pid(String)
    /// A consent receipt's id.
    case receipt(String)
    /// Served feature values by name.
    case features([String: Int])
    /// Active purposes.
    case purposes(Set<String>)
    /// Search hits: pid → vector id.
    case hits([String: Int])

    public var description: String {
        switch self {
        case .none: return "-"
        case .pid(let pid): return pid
        case .receipt(let id): return "receipt \(id)"
        case .features(let values): return "\(values.sorted { $0.key < $1.key })"
        case .purposes(let purposes): return "\(purposes.sorted())"
        case .hits(let hits): return "\(hits.sorted { $0.key < $1.key })"
        }
    }
}

/// How an operation ended, in Jepsen's three kinds.
public enum RegionCompletion: Sendable, Hashable, CustomStringConvertible {
    /// Acknowledged, with what came back.
    case ok(RegionValue)
    /// A definite answer that nothing happened (a write) or no answer was
    /// given (a read): a 4xx, or a 503 on a read.
    case fail(status: Int, code: String)
    /// Indeterminate: it may have happened, now or later (a timeout, a reset
    /// connection, a 5xx on a write, `no_quorum` on a write included).
    case info(String)

    public var isOK: Bool { if case .ok = self { return true } else { return false } }

    /// The code recorded for a 503 `no_quorum` that lacks the `Retry-After` the contract asks for.
    public static let noQuorumWithoutRetryAfter = "no_quorum_without_retry_after"

    /// The problem code of a refusal or of an indeterminate 5xx.
    public var code: String? {
        switch self {
        case .ok: return nil
        case .fail(_, let code): return code
        case .info(let reason): return reason
        }
    }

    public var description: String {
        switch self {
        case .ok(let value): return "ok \(value)"
        case .fail(let status, let code): return "fail \(status) \(code)"
        case .info(let reason): return "info \(reason)"
        }
    }
}

/// One operation: who sent it, to which node, when it was invoked and when
/// its answer came (seconds on the run's monotonic clock).
public struct HistoryEntry: Sendable, Hashable, CustomStringConvertible {
    public let id: Int
    public let client: String
    public let node: String
    public let operation: RegionOperation
    public let invoked: Double
    public var completed: Double
    public var completion: RegionCompletion

    public init(id: Int, client: String, node: String, operation: RegionOperation, invoked: Double, completed: Double,
                completion: RegionCompletion) {
        self.id = id
        self.client = client
        self.node = node
        self.operation = operation
        self.invoked = invoked
        self.completed = completed
        self.completion = completion
    }

    /// The latest moment the operation may have taken effect: its answer if
    /// it was acknowledged, never bounded if indeterminate.
    public var effectEnd: Double { completion.isOK ? completed : .infinity }

    /// Whether the write may have taken effect (acknowledged or indeterminate).
    public var mayHaveHappened: Bool {
        if case .fail = completion { return false }
        return true
    }

    public var description: String {
        String(format: "#%d %@ @%@ [%.3f–%.3f] %@ → %@", id, client, node, invoked, completed,
               operation.description, completion.description)
    }
}

/// What the nemesis did, and when.
public struct NemesisEvent: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case kill, restart, pause, resume, partition, heal, note
    }
    public let at: Double
    public let kind: Kind
    public let node: String
    public let detail: String

    public init(at: Double, kind: Kind, node: String, detail: String = "") {
        self.at = at
        self.kind = kind
        self.node = node
        self.detail = detail
    }

    public var description: String { String(format: "%.3f nemesis %@ %@ %@", at, kind.rawValue, node, detail) }
}

/// A node cut off from the others between `start` and `end`.
public struct PartitionWindow: Sendable, Hashable {
    public let node: String
    public let start: Double
    public let end: Double

    public init(node: String, start: Double, end: Double) {
        self.node = node
        self.start = start
        self.end = end
    }
}

/// The history of a run, recorded by concurrent clients and the nemesis.
public final class History: @unchecked Sendable {
    private let lock = NSLock()
    private let origin = DispatchTime.now().uptimeNanoseconds
    private var recorded: [HistoryEntry] = []
    private var events: [NemesisEvent] = []

    public init() {}

    /// Seconds since the history began.
    public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - origin) / 1e9 }

    /// Records an invocation; its completion is filled in by `complete`.
    public func invoke(client: String, node: String, _ operation: RegionOperation) -> Int {
        let at = now()
        lock.lock()
        defer { lock.unlock() }
        recorded.append(HistoryEntry(id: recorded.count, client: client, node: node, operation: operation, invoked: at,
                                     completed: .infinity, completion: .info("pending")))
        return recorded.count - 1
    }

    public func complete(_ id: Int, _ completion: RegionCompletion) {
        let at = now()
        lock.lock()
        recorded[id].completed = at
        recorded[id].completion = completion
        lock.unlock()
    }

    public func record(_ kind: NemesisEvent.Kind, _ node: String, _ detail: String = "") {
        let event = NemesisEvent(at: now(), kind: kind, node: node, detail: detail)
        lock.lock()
        events.append(event)
        lock.unlock()
        print(event.description)
    }

    public var entries: [HistoryEntry] {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }

    public var nemesisEvents: [NemesisEvent] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }

    /// The windows between each `partition` event and the `heal` of the same node.
    public var partitions: [PartitionWindow] {
        var open: [String: Double] = [:]
        var windows: [PartitionWindow] = []
        for event in nemesisEvents {
            if event.kind == .partition { open[event.node] = event.at }
            if event.kind == .heal, let start = open.removeValue(forKey: event.node) {
                windows.append(PartitionWindow(node: event.node, start: start, end: event.at))
            }
        }
        return windows
    }

    /// The whole run as text, operations and nemesis events in time order.
    public func render() -> String {
        let lines = entries.map { ($0.invoked, $0.description) } + nemesisEvents.map { ($0.at, $0.description) }
        return lines.sorted { $0.0 < $1.0 }.map(\.1).joined(separator: "\n")
    }
}
