import Foundation

/// What the workload defined: each feature's and collection's purpose, and
/// the purposes subjects grant and revoke (consent basis in the region).
public struct RegionSchema: Sendable {
    public let featurePurposes: [String: String]
    public let collectionPurposes: [String: String]
    public let consentPurposes: [String]

    public init(featurePurposes: [String: String], collectionPurposes: [String: String], consentPurposes: [String]) {
        self.featurePurposes = featurePurposes
        self.collectionPurposes = collectionPurposes
        self.consentPurposes = consentPurposes
    }
}

/// One subject as a node shows it at the end of a run.
public struct SubjectState: Sendable, Equatable {
    /// Receipt ids, oldest first.
    public var receipts: [String]
    /// The last receipt's hash.
    public var chainHead: String?
    public var chainValid: Bool
    public var active: Set<String>
    /// Served feature values by name (every purpose).
    public var features: [String: Int]
    /// Collection → vector id of the subject's vector, where a search finds it.
    public var vectors: [String: Int]

    public init(receipts: [String] = [], chainHead: String? = nil, chainValid: Bool = true, active: Set<String> = [],
                features: [String: Int] = [:], vectors: [String: Int] = [:]) {
        self.receipts = receipts
        self.chainHead = chainHead
        self.chainValid = chainValid
        self.active = active
        self.features = features
        self.vectors = vectors
    }
}

/// What one node shows at the end of a run, read from that node alone.
public struct NodeState: Sendable, Equatable {
    /// Identifier → pid, for every identifier the run tried to register and the node knows.
    public var pids: [String: String]
    public var subjects: [String: SubjectState]
    /// The audit chain's hashes in order (`GET /v1/audit`).
    public var auditHashes: [String]
    public var auditValid: Bool

    public init(pids: [String: String] = [:], subjects: [String: SubjectState] = [:], auditHashes: [String] = [],
                auditValid: Bool = true) {
        self.pids = pids
        self.subjects = subjects
        self.auditHashes = auditHashes
        self.auditValid = auditValid
    }
}

/// A property the run broke, with the operations that show it.
public struct Violation: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// An acknowledged write is missing, or undone, at the end.
        case lostWrite = "lost-write"
        /// A read or search returned a subject's data for a purpose after a
        /// revocation of that purpose was acknowledged.
        case servedAfterRevocation = "served-after-revocation"
        /// A read missed an acknowledged write (consent) that preceded it.
        case staleRead = "stale-read"
        /// A value no write that may have happened produced.
        case phantom
        /// Two nodes end with different states.
        case divergence
        /// One identifier, two pids.
        case splitRegistration = "split-registration"
        /// A node cut off from the majority acknowledged something.
        case minorityServed = "minority-served"
        /// A node cut off from the majority never said `no_quorum`.
        case noQuorumMissing = "no-quorum-missing"
        /// A `no_quorum` refusal without `Retry-After`.
        case refusalWithoutRetryAfter = "refusal-without-retry-after"
    }

    public let kind: Kind
    public let detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "[\(kind.rawValue)] \(detail)" }
}

/// Checks a region's recorded history and the nodes' final states: nothing
/// acknowledged is lost, nothing revoked is served, every node ends the
/// same, and a node cut off from the majority refuses. A pure function of
/// its inputs; the run's clock is the one the history was recorded on.
public struct RegionChecker: Sendable {
    public let schema: RegionSchema
    public let entries: [HistoryEntry]
    public let partitions: [PartitionWindow]
    /// Node name → its state at the end, after healing.
    public let finals: [String: NodeState]
    /// How long after a partition starts the cut-off node may still answer
    /// (a leader's lease, requests already in flight).
    public let partitionGrace: Double

    /// The operations grouped by what they touch, so that each check looks up rather than scans.
    private let index: Index

    public init(schema: RegionSchema, entries: [HistoryEntry], partitions: [PartitionWindow] = [],
                finals: [String: NodeState], partitionGrace: Double = 3) {
        self.schema = schema
        self.entries = entries
        self.partitions = partitions
        self.finals = finals
        self.partitionGrace = partitionGrace
        index = Index(entries)
    }

    struct Key: Hashable {
        let pid: String
        let name: String
    }

    struct Index: Sendable {
        var grants: [Key: [HistoryEntry]] = [:]
        var revokes: [Key: [HistoryEntry]] = [:]
        var featureStores: [Key: [HistoryEntry]] = [:]
        var vectorStores: [Key: [HistoryEntry]] = [:]
        var consentOperations: [String: [HistoryEntry]] = [:]
        /// Unique value or vector id → the write that stored it.
        var storedFeature: [Int: HistoryEntry] = [:]
        var storedVector: [Int: HistoryEntry] = [:]

        init(_ entries: [HistoryEntry]) {
            for entry in entries {
                switch entry.operation {
                case .grant(let pid, let purpose):
                    grants[Key(pid: pid, name: purpose), default: []].append(entry)
                    consentOperations[pid, default: []].append(entry)
                case .revoke(let pid, let purpose):
                    revokes[Key(pid: pid, name: purpose), default: []].append(entry)
                    consentOperations[pid, default: []].append(entry)
                case .writeFeature(let pid, let feature, let value):
                    featureStores[Key(pid: pid, name: feature), default: []].append(entry)
                    if storedFeature[value] == nil { storedFeature[value] = entry }
                case .upsertVector(let pid, let collection, let id):
                    vectorStores[Key(pid: pid, name: collection), default: []].append(entry)
                    if storedVector[id] == nil { storedVector[id] = entry }
                default:
                    continue
                }
            }
        }
    }

    public func check() -> [Violation] {
        registrations() + reads() + finalStates() + convergence() + partitionAnswers() + refusals()
    }

    // MARK: - Indexes over the history

    /// A write and the value it leaves on its key (nil: nothing stored).
    struct Write<Value: Hashable> {
        let entry: HistoryEntry
        let value: Value
    }

    private func purpose(ofFeature feature: String) -> String { schema.featurePurposes[feature] ?? "?" }
    private func purpose(ofCollection collection: String) -> String { schema.collectionPurposes[collection] ?? "?" }

    private var acknowledgedPids: [String: String] {
        var pids: [String: String] = [:]
        for entry in entries {
            if case .register(let identifier) = entry.operation, case .ok(.pid(let pid)) = entry.completion { pids[identifier] = pid }
        }
        return pids
    }

    private func revokes(_ pid: String, _ purpose: String) -> [HistoryEntry] { index.revokes[Key(pid: pid, name: purpose)] ?? [] }

    private func grants(_ pid: String, _ purpose: String) -> [HistoryEntry] { index.grants[Key(pid: pid, name: purpose)] ?? [] }

    private func featureWrites(_ pid: String, _ feature: String) -> [Write<Int?>] {
        let stores = (index.featureStores[Key(pid: pid, name: feature)] ?? []).map { entry -> Write<Int?> in
            guard case .writeFeature(_, _, let value) = entry.operation else { preconditionFailure("indexed as a feature write") }
            return Write(entry: entry, value: value)
        }
        return stores + revokes(pid, purpose(ofFeature: feature)).map { Write(entry: $0, value: nil) }
    }

    private func vectorWrites(_ pid: String, _ collection: String) -> [Write<Int?>] {
        let stores = (index.vectorStores[Key(pid: pid, name: collection)] ?? []).map { entry -> Write<Int?> in
            guard case .upsertVector(_, _, let id) = entry.operation else { preconditionFailure("indexed as a vector write") }
            return Write(entry: entry, value: id)
        }
        return stores + revokes(pid, purpose(ofCollection: collection)).map { Write(entry: $0, value: nil) }
    }

    private func consentWrites(_ pid: String, _ purpose: String) -> [Write<Bool>] {
        grants(pid, purpose).map { Write(entry: $0, value: true) } + revokes(pid, purpose).map { Write(entry: $0, value: false) }
    }

    /// The values a key may hold once every write is done: those of writes
    /// that may have happened and that no acknowledged write to the key
    /// follows in real time (the initial value only if nothing was acknowledged).
    static func legalFinalValues<Value: Hashable>(_ writes: [Write<Value>], initial: Value) -> Set<Value> {
        let acknowledged = writes.filter { $0.entry.completion.isOK }
        var legal: Set<Value> = acknowledged.isEmpty ? [initial] : []
        for write in writes where write.entry.mayHaveHappened {
            let overwritten = acknowledged.contains { $0.entry.id != write.entry.id && write.entry.effectEnd < $0.entry.invoked }
            if !overwritten { legal.insert(write.value) }
        }
        return legal
    }

    // MARK: - Registrations

    private func registrations() -> [Violation] {
        var byIdentifier: [String: Set<String>] = [:]
        for entry in entries {
            if case .register(let identifier) = entry.operation, case .ok(.pid(let pid)) = entry.completion {
                byIdentifier[identifier, default: []].insert(pid)
            }
        }
        var violations = byIdentifier.filter { $0.value.count > 1 }.sorted { $0.key < $1.key }.map {
            Violation(.splitRegistration, "\($0.key) was registered as \($0.value.sorted())")
        }
        // An acknowledged registration never becomes unknown afterwards.
        let registeredAt = Dictionary(entries.compactMap { entry -> (String, Double)? in
            guard case .register = entry.operation, case .ok(.pid(let pid)) = entry.completion else { return nil }
            return (pid, entry.completed)
        }, uniquingKeysWith: min)
        for entry in entries {
            guard case .fail(404, "unknown_subject") = entry.completion, let pid = entry.operation.pid,
                  let at = registeredAt[pid], at < entry.invoked else { continue }
            violations.append(Violation(.lostWrite, "\(entry) found the subject unknown after its registration was acknowledged"))
        }
        return violations
    }

    // MARK: - Reads during the run

    private func reads() -> [Violation] {
        var violations: [Violation] = []
        for read in entries {
            guard case .ok(let value) = read.completion else { continue }
            switch (read.operation, value) {
            case (.readFeatures(let pid, let purpose), .features(let features)):
                for (name, served) in features.sorted(by: { $0.key < $1.key }) {
                    let store = index.storedFeature[served]
                    let isOwn: Bool
                    if case .writeFeature(pid, name, _)? = store?.operation { isOwn = self.purpose(ofFeature: name) == purpose } else { isOwn = false }
                    violations += servedData(read, pid: pid, purpose: purpose, store: isOwn ? store : nil, what: "\(name)=\(served)")
                }
            case (.search(let collection, let purpose), .hits(let hits)):
                for (pid, id) in hits.sorted(by: { $0.key < $1.key }) {
                    let store = index.storedVector[id]
                    let isOwn: Bool
                    if case .upsertVector(pid, collection, _)? = store?.operation { isOwn = true } else { isOwn = false }
                    violations += servedData(read, pid: pid, purpose: purpose, store: isOwn ? store : nil, what: "vector #\(id) of \(pid)")
                }
            case (.readConsent(let pid), .purposes(let active)):
                violations += consentRead(read, pid: pid, active: active)
            default:
                continue
            }
        }
        return violations
    }

    /// A read served `what`, stored by `store`, about `pid` for `purpose`.
    private func servedData(_ read: HistoryEntry, pid: String, purpose: String, store: HistoryEntry?, what: String) -> [Violation] {
        guard let store, store.mayHaveHappened, store.invoked < read.completed else {
            return [Violation(.phantom, "\(read) served \(what), which no write that may have happened stored"
                                + (store.map { " (\($0))" } ?? ""))]
        }
        var violations: [Violation] = []
        for revoke in revokes(pid, purpose) where revoke.completion.isOK && revoke.completed < read.invoked {
            if store.effectEnd < revoke.invoked {
                violations.append(Violation(.servedAfterRevocation,
                                            "\(read) served \(what) stored by \(store), which \(revoke) had purged"))
            } else if !mayHaveGranted(pid, purpose, after: revoke, before: read) {
                violations.append(Violation(.servedAfterRevocation,
                                            "\(read) served \(what) after \(revoke), with no grant since"))
            }
        }
        return violations
    }

    private func mayHaveGranted(_ pid: String, _ purpose: String, after revoke: HistoryEntry, before read: HistoryEntry) -> Bool {
        grants(pid, purpose).contains { $0.mayHaveHappened && $0.effectEnd > revoke.invoked && $0.invoked < read.completed }
    }

    private func mayHaveRevoked(_ pid: String, _ purpose: String, after grant: HistoryEntry, before read: HistoryEntry) -> Bool {
        revokes(pid, purpose).contains { $0.mayHaveHappened && $0.effectEnd > grant.invoked && $0.invoked < read.completed }
    }

    private func consentRead(_ read: HistoryEntry, pid: String, active: Set<String>) -> [Violation] {
        var violations: [Violation] = []
        for purpose in schema.consentPurposes {
            if active.contains(purpose) {
                if !grants(pid, purpose).contains(where: { $0.mayHaveHappened && $0.invoked < read.completed }) {
                    violations.append(Violation(.phantom, "\(read) shows \(purpose) active, which no grant set"))
                }
                for revoke in revokes(pid, purpose) where revoke.completion.isOK && revoke.completed < read.invoked
                    && !mayHaveGranted(pid, purpose, after: revoke, before: read) {
                    violations.append(Violation(.servedAfterRevocation, "\(read) shows \(purpose) active after \(revoke)"))
                }
            } else {
                for grant in grants(pid, purpose) where grant.completion.isOK && grant.completed < read.invoked
                    && !mayHaveRevoked(pid, purpose, after: grant, before: read) {
                    violations.append(Violation(.staleRead, "\(read) misses \(purpose), granted by \(grant)"))
                }
            }
        }
        return violations
    }

    // MARK: - Final states

    private func finalStates() -> [Violation] {
        var violations: [Violation] = []
        let pids = acknowledgedPids
        for (node, state) in finals.sorted(by: { $0.key < $1.key }) {
            for (identifier, pid) in pids.sorted(by: { $0.key < $1.key }) {
                guard state.pids[identifier] == pid else {
                    violations.append(Violation(.lostWrite, "\(node) does not know \(identifier) as \(pid) (acknowledged), "
                                                + "it answers \(state.pids[identifier] ?? "unknown")"))
                    continue
                }
                guard let subject = state.subjects[pid] else {
                    violations.append(Violation(.lostWrite, "\(node) shows nothing of registered subject \(pid)"))
                    continue
                }
                violations += finalSubject(pid, subject).map { Violation($0.kind, "\(node): \($0.detail)") }
            }
            if !state.auditValid { violations.append(Violation(.divergence, "\(node): the audit chain does not verify")) }
        }
        return violations
    }

    private func finalSubject(_ pid: String, _ subject: SubjectState) -> [Violation] {
        var violations: [Violation] = []
        let consentOperations = index.consentOperations[pid] ?? []
        for operation in consentOperations {
            if case .ok(.receipt(let id)) = operation.completion, !subject.receipts.contains(id) {
                violations.append(Violation(.lostWrite, "receipt of \(operation) is missing"))
            }
        }
        let possible = consentOperations.filter(\.mayHaveHappened).count
        if subject.receipts.count > possible {
            violations.append(Violation(.phantom, "\(pid) has \(subject.receipts.count) receipts, but only \(possible) "
                                        + "consent operations may have happened"))
        }
        if !subject.chainValid { violations.append(Violation(.divergence, "\(pid)'s receipt chain does not verify")) }

        for purpose in schema.consentPurposes {
            let legal = Self.legalFinalValues(consentWrites(pid, purpose), initial: false)
            let shown = subject.active.contains(purpose)
            if !legal.contains(shown) {
                violations.append(Violation(.lostWrite, "\(pid) ends with \(purpose) \(shown ? "active" : "inactive"), "
                                            + "but the last acknowledged consent operation says otherwise"))
            }
        }
        for (feature, purpose) in schema.featurePurposes.sorted(by: { $0.key < $1.key }) {
            violations += finalValue(of: "feature \(feature) of \(pid)", shown: subject.features[feature], purposeActive: subject.active.contains(purpose),
                                     writes: featureWrites(pid, feature))
        }
        for (collection, purpose) in schema.collectionPurposes.sorted(by: { $0.key < $1.key }) {
            violations += finalValue(of: "\(collection) vector of \(pid)", shown: subject.vectors[collection],
                                     purposeActive: subject.active.contains(purpose), writes: vectorWrites(pid, collection))
        }
        return violations
    }

    /// A value can only be seen while its purpose is active; then it must be
    /// one the key may legally hold.
    private func finalValue(of what: String, shown: Int?, purposeActive: Bool, writes: [Write<Int?>]) -> [Violation] {
        guard purposeActive else {
            return shown.map { [Violation(.servedAfterRevocation, "\(what) = \($0) is served without consent")] } ?? []
        }
        let legal = Self.legalFinalValues(writes, initial: nil)
        guard !legal.contains(shown) else { return [] }
        let acknowledged = writes.filter { $0.entry.completion.isOK }.map(\.entry.description)
        return [Violation(.lostWrite, "\(what) ends as \(shown.map(String.init) ?? "absent"), not one of "
                          + "\(legal.map { $0.map(String.init) ?? "absent" }.sorted()); acknowledged: \(acknowledged)")]
    }

    // MARK: - Convergence

    private func convergence() -> [Violation] {
        let nodes = finals.sorted { $0.key < $1.key }
        guard let (reference, expected) = nodes.first else { return [] }
        var violations: [Violation] = []
        for (node, state) in nodes.dropFirst() {
            for identifier in Set(expected.pids.keys).union(state.pids.keys).sorted() where expected.pids[identifier] != state.pids[identifier] {
                violations.append(Violation(.divergence, "\(identifier): \(reference) says \(expected.pids[identifier] ?? "unknown"), "
                                            + "\(node) says \(state.pids[identifier] ?? "unknown")"))
            }
            for pid in Set(expected.subjects.keys).union(state.subjects.keys).sorted() where expected.subjects[pid] != state.subjects[pid] {
                violations.append(Violation(.divergence, "\(pid): \(reference) shows \(describe(expected.subjects[pid])), "
                                            + "\(node) shows \(describe(state.subjects[pid]))"))
            }
            // Reading the audit log is itself audited, so each node is read at
            // a different length: the chains must agree on their common prefix.
            let common = min(expected.auditHashes.count, state.auditHashes.count)
            if common == 0 {
                violations.append(Violation(.divergence, "no audit chain to compare between \(reference) and \(node)"))
            } else if expected.auditHashes[common - 1] != state.auditHashes[common - 1] {
                violations.append(Violation(.divergence, "audit chains of \(reference) and \(node) differ at event \(common)"))
            }
        }
        return violations
    }

    private func describe(_ subject: SubjectState?) -> String {
        guard let subject else { return "nothing" }
        return "receipts \(subject.receipts.count) (last \(subject.receipts.last ?? "-"), head \(subject.chainHead ?? "-")), active \(subject.active.sorted()), "
            + "features \(subject.features.sorted { $0.key < $1.key }), vectors \(subject.vectors.sorted { $0.key < $1.key })"
    }

    // MARK: - Refusals

    /// A refusal for want of a majority tells the client when to retry.
    private func refusals() -> [Violation] {
        entries.filter { $0.completion.code == RegionCompletion.noQuorumWithoutRetryAfter }.prefix(5).map {
            Violation(.refusalWithoutRetryAfter, "\($0) was refused with no_quorum but no Retry-After")
        }
    }

    // MARK: - Partitions

    private func partitionAnswers() -> [Violation] {
        var violations: [Violation] = []
        for window in partitions {
            let asked = entries.filter {
                $0.node == window.node && $0.invoked >= window.start + partitionGrace && $0.completed <= window.end
            }
            for entry in asked where entry.completion.isOK {
                violations.append(Violation(.minorityServed, "\(entry) was answered while \(window.node) was cut off"))
            }
            if !asked.contains(where: { $0.completion.code == "no_quorum" }) {
                violations.append(Violation(.noQuorumMissing, String(
                    format: "%@, cut off %.3f–%.3f, answered no request with no_quorum (%d asked after the grace)",
                    window.node, window.start, window.end, asked.count)))
            }
        }
        return violations
    }
}
