import DomicileNet
import Foundation

/// Calls a region's nodes for a Jepsen-style run: each operation is recorded
/// in the history with how it ended, and the nodes' final states are read
/// one node at a time.
public final class RegionClient: Sendable {
    public let nodes: RegionNodes
    public let history: History
    let tokens: [String: String]
    let http: HTTPClient

    /// `timeoutSeconds` bounds every call: past it the operation is indeterminate.
    /// Over TLS when the nodes' layout has a CA (`FederationFixture.caFile`).
    public init(nodes: RegionNodes, history: History, timeoutSeconds: Double = 8) throws {
        self.nodes = nodes
        self.history = history
        tokens = nodes.federation.tokens
        var settings = HTTPClient.Settings()
        settings.connectTimeoutMilliseconds = 1_000
        settings.requestTimeoutMilliseconds = Int64(timeoutSeconds * 1_000)
        settings.connectionsPerPeerMax = 32
        settings.tls = try nodes.federation.caFile.map { try TLSContext.client(caFile: $0) }
        http = HTTPClient(settings: settings)
    }

    /// What a call came back with: an answer, or an error before one.
    public enum Reply {
        case answer(status: Int, json: [String: Any], headers: HTTPHeaders)
        /// Nothing was sent (the connection could not be made, and was not a resend).
        case notSent(String)
        /// Sent, but no answer: it may have been done.
        case lost(String)
    }

    /// One call, not recorded in the history.
    public func call(_ node: String, _ method: String, _ path: String, role: String?, body: Any? = nil) async -> Reply {
        guard let address = nodes.address(node) else { return .notSent("no address") }
        var headers = HTTPHeaders()
        if let role { headers.set("Authorization", "Bearer \(tokens[role] ?? "")") }
        var bytes: [UInt8] = []
        if let body {
            headers.set("Content-Type", "application/json")
            bytes = Array((try? JSONSerialization.data(withJSONObject: body)) ?? Data())
        }
        do {
            let response = try await http.send(method, path, to: address, headers: headers, body: bytes)
            let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            return .answer(status: response.status, json: json, headers: response.headers)
        } catch HTTPClient.Failure.connectFailed(_, let reason) where method == "POST" {
            // The client resends an idempotent request (PUT) once when a reused
            // connection closes before an answer, so for a PUT a refused connect
            // may follow a first copy the node did run: only a POST was surely not sent.
            return .notSent("connect failed: \(reason)")
        } catch {
            return .lost("\(error)")
        }
    }

    /// Jepsen's three outcomes for an answer that is not a success.
    /// A write refused with a 4xx did not happen; a write answered with a 5xx
    /// (`no_quorum` too: its entry may have been committed) or not at all may
    /// have happened. A read that is not answered is simply no answer.
    public static func refusal(isWrite: Bool, status: Int, code: String) -> RegionCompletion {
        if isWrite && status >= 500 { return .info(code) }
        return .fail(status: status, code: code)
    }

    /// Performs `operation` on `node`, recording it.
    @discardableResult
    public func perform(_ operation: RegionOperation, client: String, node: String) async -> RegionCompletion {
        let id = history.invoke(client: client, node: node, operation)
        let completion = await execute(operation, on: node)
        history.complete(id, completion)
        return completion
    }

    func execute(_ operation: RegionOperation, on node: String) async -> RegionCompletion {
        let (method, path, role, body) = Self.request(for: operation)
        switch await call(node, method, path, role: role, body: body) {
        case .notSent(let reason):
            return .fail(status: 0, code: reason)
        case .lost(let reason):
            return operation.isWrite ? .info(reason) : .fail(status: 0, code: reason)
        case .answer(let status, let json, _) where (200..<300).contains(status):
            return .ok(Self.value(of: operation, json))
        case .answer(let status, let json, let headers):
            var code = json["code"] as? String ?? json["reason"] as? String ?? "status \(status)"
            if code == "no_quorum", operation != .readiness, headers["retry-after"] == nil {
                code = RegionCompletion.noQuorumWithoutRetryAfter
            }
            return Self.refusal(isWrite: operation.isWrite, status: status, code: code)
        }
    }

    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }

    /// The vector stored for vector id `id`: its Euclidean distance to the origin is `id`.
    public static func vector(_ id: Int, dimension: Int = 4) -> [Double] { [Double(id)] + Array(repeating: 0, count: dimension - 1) }

    static func request(for operation: RegionOperation) -> (String, String, String?, Any?) {
        switch operation {
        case .register(let identifier):
            return ("POST", "/v1/subjects", "ingest", ["identifier": ["kind": "email", "value": identifier], "region": "eu"])
        case .grant(let pid, let purpose), .revoke(let pid, let purpose):
            let action = operation == .grant(pid: pid, purpose: purpose) ? "grant" : "revoke"
            return ("POST", "/v1/subjects/\(pid)/consents", "ingest",
                    ["action": action, "purposes": [purpose], "source": "jepsen", "collected_at": now()])
        case .writeFeature(let pid, let feature, let value):
            return ("PUT", "/v1/subjects/\(pid)/features", "ingest", ["values": [feature: value]])
        case .upsertVector(let pid, let collection, let id):
            return ("PUT", "/v1/collections/\(collection)/vectors/\(pid)", "ingest", ["vector": vector(id)])
        case .readFeatures(let pid, let purpose):
            return ("GET", "/v1/subjects/\(pid)/features?purpose=\(purpose)", "serve", nil)
        case .readConsent(let pid):
            return ("GET", "/v1/subjects/\(pid)/consent", "serve", nil)
        case .search(let collection, let purpose):
            return ("POST", "/v1/collections/\(collection)/search", "serve",
                    ["vector": vector(0), "k": 100, "purpose": purpose])
        case .readiness:
            return ("GET", "/readyz", nil, nil)
        }
    }

    static func value(of operation: RegionOperation, _ json: [String: Any]) -> RegionValue {
        switch operation {
        case .register:
            return .pid(json["pid"] as? String ?? "?")
        case .grant, .revoke:
            return .receipt(json["receipt_id"] as? String ?? "?")
        case .readFeatures:
            let features = json["features"] as? [String: Any] ?? [:]
            return .features(features.compactMapValues { ($0 as? NSNumber).map { Int($0.doubleValue.rounded()) } })
        case .readConsent:
            let active = json["active"] as? [[String: Any]] ?? []
            return .purposes(Set(active.compactMap { $0["purpose"] as? String }))
        case .search:
            let results = json["results"] as? [[String: Any]] ?? []
            return .hits(Dictionary(results.compactMap { hit -> (String, Int)? in
                guard let pid = hit["pid"] as? String, let score = hit["score"] as? NSNumber else { return nil }
                return (pid, Int(score.doubleValue.rounded()))
            }, uniquingKeysWith: { first, _ in first }))
        case .writeFeature, .upsertVector, .readiness:
            return .none
        }
    }

    // MARK: - Setup and the region log

    /// Calls `node` until it answers 2xx (the region may still be electing), within `seconds`.
    public func setUp(_ node: String, _ method: String, _ path: String, role: String, body: Any, seconds: Double = 20) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            if case .answer(let status, let json, _) = await call(node, method, path, role: role, body: body) {
                if (200..<300).contains(status) { return }
                last = "\(status) \(json)"
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        throw FixtureError(description: "\(method) \(path) on \(node) did not succeed: \(last)")
    }

    /// The `region_log` section of `node`'s `GET /v1/cluster`, if it answers one.
    public func regionLog(_ node: String) async -> [String: Any]? {
        guard case .answer(200, let json, _) = await call(node, "GET", "/v1/cluster", role: "admin") else { return nil }
        return json["region_log"] as? [String: Any]
    }

    /// The leader the serving nodes agree on, waiting up to `seconds` for one.
    public func leader(seconds: Double = 20) async -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var named: [String] = []
            for node in nodes.names where nodes.isServing(node) {
                if let log = await regionLog(node), let leader = log["leader"] as? String { named.append(leader) }
            }
            if let leader = named.first, named.allSatisfy({ $0 == leader }), nodes.isServing(leader) { return leader }
            try? await Task.sleep(nanoseconds: 200_000_000)
        }
        return nil
    }

    /// Waits until every node has applied the same index, twice in a row
    /// (what was indeterminate has settled), up to `seconds`.
    public func awaitConvergence(seconds: Double = 30) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var previous: [Int]? = nil
        while Date() < deadline {
            var applied: [Int] = []
            for node in nodes.names {
                if let log = await regionLog(node), let index = (log["applied_index"] as? NSNumber)?.intValue,
                   let commit = (log["commit_index"] as? NSNumber)?.intValue, index == commit {
                    applied.append(index)
                }
            }
            if applied.count == nodes.names.count, Set(applied).count == 1 {
                if previous == applied { return true }
                previous = applied
            } else {
                previous = nil
            }
            try? await Task.sleep(nanoseconds: 500_000_000)
        }
        return false
    }

    // MARK: - Final states

    /// Reads what `node` alone shows of the run's subjects, retrying calls
    /// refused while the region settles.
    public func state(of node: String, identifiers: [String], schema: RegionSchema) async throws -> NodeState {
        var state = NodeState()
        for identifier in identifiers {
            let json = try await read(node, "POST", "/v1/subjects/lookup", role: "ingest",
                                      body: ["identifier": ["kind": "email", "value": identifier]], absentOn404: true)
            if let pid = json?["pid"] as? String { state.pids[identifier] = pid }
        }
        for pid in Set(state.pids.values).sorted() {
            var subject = SubjectState()
            let receipts = try await read(node, "GET", "/v1/subjects/\(pid)/consents", role: "privacy_officer") ?? [:]
            let chain = receipts["receipts"] as? [[String: Any]] ?? []
            subject.receipts = chain.compactMap { $0["receipt_id"] as? String }
            subject.chainHead = chain.last?["hash"] as? String
            subject.chainValid = receipts["chain_valid"] as? Bool ?? false
            let consent = try await read(node, "GET", "/v1/subjects/\(pid)/consent", role: "serve") ?? [:]
            if case .purposes(let active) = Self.value(of: .readConsent(pid: pid), consent) { subject.active = active }
            for purpose in Set(schema.featurePurposes.values).sorted() {
                let json = try await read(node, "GET", "/v1/subjects/\(pid)/features?purpose=\(purpose)", role: "serve") ?? [:]
                if case .features(let values) = Self.value(of: .readFeatures(pid: pid, purpose: purpose), json) {
                    subject.features.merge(values) { first, _ in first }
                }
            }
            state.subjects[pid] = subject
        }
        for (collection, purpose) in schema.collectionPurposes.sorted(by: { $0.key < $1.key }) {
            let search = RegionOperation.search(collection: collection, purpose: purpose)
            let (_, path, _, body) = Self.request(for: search)
            let json = try await read(node, "POST", path, role: "serve", body: body) ?? [:]
            if case .hits(let hits) = Self.value(of: search, json) {
                for (pid, id) in hits { state.subjects[pid, default: SubjectState()].vectors[collection] = id }
            }
        }
        var after = 0
        while true {
            let page = try await read(node, "GET", "/v1/audit?after=\(after)&limit=1000", role: "privacy_officer") ?? [:]
            let events = page["events"] as? [[String: Any]] ?? []
            state.auditHashes += events.compactMap { $0["hash"] as? String }
            guard let next = (page["next_after"] as? NSNumber)?.intValue, !events.isEmpty, next > after else { break }
            after = next
        }
        let verify = try await read(node, "GET", "/v1/audit/verify", role: "privacy_officer") ?? [:]
        state.auditValid = verify["valid"] as? Bool ?? false
        return state
    }

    /// One read of the final state: 2xx gives the body, 404 (when allowed) nil; else retried for a while.
    private func read(_ node: String, _ method: String, _ path: String, role: String, body: Any? = nil,
                      absentOn404: Bool = false) async throws -> [String: Any]? {
        var last = ""
        for _ in 0..<40 {
            switch await call(node, method, path, role: role, body: body) {
            case .answer(let status, let json, _) where (200..<300).contains(status): return json
            case .answer(404, _, _) where absentOn404: return nil
            case .answer(let status, let json, _): last = "\(status) \(json["code"] ?? "")"
            case .notSent(let reason), .lost(let reason): last = reason
            }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        throw FixtureError(description: "\(node) did not answer \(method) \(path) at the end: \(last)")
    }
}
