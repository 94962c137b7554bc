import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileVectors
import Foundation

/// The fresh side of federated search (DESIGN.md section 8; docs/FEDERATION.md,
/// "Federated search"): one request per other region to a live node of it,
/// hedged to a second node, answered from the noised copies that region
/// exported — filtered by consent as it stands there now — never from its
/// full-precision vectors.
///
/// Requests travel as `POST /internal/v1/federation/search`, signed by the
/// asking node (`FederationFrame`, checked against the regions' rosters) and
/// sealed both ways under the federation key, like the federation's sync.
/// The query vector travels to the other region: under the residency
/// policy's `noised_embedding` rule from the asking region to it (and the
/// answer under the rule back); a region either rule denies is not asked.
enum RemoteSearch {
    static let path = "/internal/v1/federation/search"
    static let requestDomain = "domicile/federation/search-request/v1"
    static let answerDomain = "domicile/federation/search-answer/v1"
    static let requestAssociatedData = Array("domicile/federation/search/v1".utf8)
    static let answerAssociatedData = Array("domicile/federation/search-answer/v1".utf8)
    /// The largest request: a query vector of the largest dimension, as JSON.
    static let requestBytesMax = 96 * 1_024
    /// After this share of a region's time without an answer, a second node is asked too.
    static let hedgeFraction = 0.4

    struct Query: Codable, Sendable {
        let from: String
        let collection: String
        let purpose: String
        let vector: [Float]
        let k: Int
        let ef: Int?
    }

    struct Hit: Codable, Sendable {
        let pid: String
        let score: Float
    }

    struct Answer: Codable, Sendable {
        let hits: [Hit]
        /// When the answering node searched (Unix milliseconds).
        let asOf: Int64
    }

    enum Outcome: Sendable {
        case answered(Answer)
        /// `timeout`, `no_live_node`, `no_answer`, or the code the region refused with.
        case failed(reason: String)
    }

    /// Whether the policy lets a fresh query go from `here` to `region` and its answer come back.
    static func allowed(between here: RegionID, and region: RegionID, policy: ResidencyPolicy) -> Bool {
        policy.transfer(.noisedEmbedding, from: here, to: region) != nil && policy.transfer(.noisedEmbedding, from: region, to: here) != nil
    }

    /// Whether noised copies released at `epsilon` may go from `source` to
    /// `destination`: at most the rule's noise floor, as for replicas
    /// (`FederationTransfer.policy`).
    static func withinFloor(_ epsilon: Double, from source: RegionID, to destination: RegionID, policy: ResidencyPolicy) -> Bool {
        guard let rule = policy.transfer(.noisedEmbedding, from: source, to: destination) else { return false }
        return rule.noiseFloorEpsilon.map { epsilon <= $0 } ?? true
    }

    /// A region's refusal as a report's reason: its code when it is one (a
    /// name), never other text a peer chose.
    static func reason(_ code: String?) -> String {
        guard let code, (1...40).contains(code.utf8.count), code.utf8.allSatisfy({ ("a"..."z").contains(Character(UnicodeScalar($0))) || $0 == UInt8(ascii: "_") }) else {
            return "refused"
        }
        return code
    }

    // MARK: Asking

    /// Asks a live node of `region`, and a second one if the first has not
    /// answered after `hedgeFraction` of the time left or failed; the first
    /// answer wins. Gives up at `deadline` (monotonic milliseconds).
    static func ask(_ region: RegionID, _ query: Query, deadline: Int64, services: NodeServices) async -> Outcome {
        let nodes = Array(services.liveNodes(in: region).shuffled().prefix(2))
        guard !nodes.isEmpty else { return .failed(reason: "no_live_node") }
        guard let encoded = try? JSONEncoder().encode(query) else { return .failed(reason: "invalid_query") }
        let framed = FederationFrame.frame(Array(encoded), domain: requestDomain, node: services.configuration.node, key: services.keys.signing)
        let sealed = services.keys.federationGossip.seal(framed, associatedData: requestAssociatedData)
        let hedgeAt = monotonicMilliseconds() + Int64(Double(max(0, deadline - monotonicMilliseconds())) * hedgeFraction)
        return await withCheckedContinuation { continuation in
            let race = Race(continuation, attempts: nodes.count)
            @Sendable func attempt(_ node: NodeAddress) async {
                let outcome = await send(sealed, to: node, of: region, deadline: deadline, services: services)
                // A failure before the hedge starts the second node now.
                if case .failed = outcome, race.startSecond() { Task { await attempt(nodes[1]) } }
                race.offer(outcome)
            }
            Task { await attempt(nodes[0]) }
            // Whatever the transport does, the region's answer is given up at the deadline.
            Task {
                try? await Task.sleep(for: .milliseconds(max(0, deadline - monotonicMilliseconds())))
                race.expire()
            }
            if nodes.count > 1 {
                Task {
                    try? await Task.sleep(for: .milliseconds(max(0, hedgeAt - monotonicMilliseconds())))
                    if race.startSecond() { await attempt(nodes[1]) }
                }
            }
        }
    }

    /// One node's answer, opened and checked: signed by a node of `region`,
    /// every hit a pid of that region with a finite score, no more than asked.
    private static func send(_ sealed: [UInt8], to node: NodeAddress, of region: RegionID, deadline: Int64,
                             services: NodeServices) async -> Outcome {
        let timeout = deadline - monotonicMilliseconds()
        guard timeout > 0 else { return .failed(reason: "timeout") }
        do {
            var headers = HTTPHeaders()
            headers.set("Content-Type", "application/octet-stream")
            let response = try await services.peerClient.send("POST", path, to: try SocketAddress(parsing: node.http), headers: headers,
                                                              body: sealed, timeoutMilliseconds: timeout)
            guard response.status == 200 else {
                let code = (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["code"] as? String
                return .failed(reason: reason(code))
            }
            guard let plaintext = try? services.keys.federationGossip.open(response.body, associatedData: answerAssociatedData),
                  let opened = FederationFrame.open(plaintext),
                  services.federation.value?.trust?.isSigned(opened.signedBytes(answerDomain), signature: opened.signature, by: opened.node,
                                                             of: region) != false,
                  let answer = try? JSONDecoder().decode(Answer.self, from: Data(opened.payload)),
                  answer.hits.count <= services.configuration.limits.searchResultsCountMax,
                  answer.hits.allSatisfy({ hit in hit.score.isFinite && (try? PID(parsing: hit.pid))?.region == region }) else {
                services.logger.warning("a federated search answer was refused", ["region": .string(region.rawValue), "node": .string(node.name)])
                return .failed(reason: "invalid_answer")
            }
            return .answered(answer)
        } catch HTTPClient.Failure.timedOut {
            return .failed(reason: "timeout")
        } catch {
            return .failed(reason: monotonicMilliseconds() >= deadline ? "timeout" : "no_answer")
        }
    }

    /// The first answer of up to two attempts, or the last failure once every attempt started has failed.
    private final class Race: Sendable {
        private struct State {
            var continuation: CheckedContinuation<Outcome, Never>?
            var running = 1
            var secondStarted = false
            let canHedge: Bool
        }

        private let state: Locked<State>

        init(_ continuation: CheckedContinuation<Outcome, Never>, attempts: Int) {
            state = Locked(State(continuation: continuation, canHedge: attempts > 1))
        }

        /// Claims the start of the second attempt: once, and only while unsettled.
        func startSecond() -> Bool {
            state.withLock { state in
                guard state.continuation != nil, state.canHedge, !state.secondStarted else { return false }
                state.secondStarted = true
                state.running += 1
                return true
            }
        }

        /// The deadline passed: settles with a timeout if nothing answered.
        func expire() {
            let resume = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
                defer { state.continuation = nil }
                return state.continuation
            }
            resume?.resume(returning: .failed(reason: "timeout"))
        }

        func offer(_ outcome: Outcome) {
            let resume = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
                state.running -= 1
                if case .failed = outcome, state.running > 0 { return nil }
                defer { state.continuation = nil }
                return state.continuation
            }
            resume?.resume(returning: outcome)
        }
    }

    // MARK: Answering

    static func add(to api: inout API) {
        let services = api.services
        api.peer("POST", path, bodyBytesMax: requestBytesMax) { request in
            try await serve(request, services: services)
        }
    }

    /// Another region's query: searched over this region's noised copies of
    /// the collection, as consent stands now, and audited.
    private static func serve(_ request: HTTPRequest, services: NodeServices) async throws -> HTTPResponse {
        guard let sync = services.federation.value,
              let plaintext = try? services.keys.federationGossip.open(request.body, associatedData: requestAssociatedData) else {
            throw HTTPError(status: 403, code: "not_a_federation_node", detail: "the body is not sealed by a node of the federation")
        }
        // Consent as it stands now is the leader's to know: a follower may not have applied the latest revoke.
        if let relayed = try await FederationSync.relayToLeader(request.body, path: path, services: services) { return relayed }
        guard let opened = FederationFrame.open(plaintext), let query = try? JSONDecoder().decode(Query.self, from: Data(opened.payload)),
              let from = try? RegionID(query.from), from != services.region, services.policy.isKnown(from) else {
            throw HTTPError(status: 400, code: "invalid_federation_message", detail: "the query does not decode, or is not from a peer region")
        }
        guard sync.trust?.isSigned(opened.signedBytes(requestDomain), signature: opened.signature, by: opened.node, of: from) != false else {
            throw HTTPError(status: 403, code: "untrusted_sender", detail: "the query is not signed by a node of the region it names")
        }
        guard allowed(between: services.region, and: from, policy: services.policy) else {
            throw HTTPError(status: 403, code: "transfer_denied", detail: "the residency policy lets no noised embedding between these regions")
        }
        let kMax = services.configuration.limits.searchResultsCountMax
        guard let name = try? Name(query.collection, what: "collection name"), let collection = services.vectors.collection(name) else {
            throw HTTPError(status: 404, code: "unknown_collection", detail: "no collection with this name")
        }
        let definition = collection.definition
        guard let export = definition.export else {
            throw HTTPError(status: 403, code: "export_not_allowed", detail: "this region's collection has no export settings")
        }
        // The answer is derived from copies released at the collection's ε: within the floor towards the asker.
        guard withinFloor(export.epsilon, from: services.region, to: from, policy: services.policy) else {
            throw HTTPError(status: 403, code: "above_noise_floor", detail: "the collection's export epsilon is above the policy's floor towards this region")
        }
        guard query.purpose == definition.purpose.rawValue else {
            throw HTTPError(status: 403, code: "purpose_mismatch", detail: "this collection serves \(definition.purpose)")
        }
        guard (1...kMax).contains(query.k), query.ef.map(HNSWSettings.efRange.contains) ?? true,
              (try? definition.metric.prepare(query.vector, dimension: definition.dimension)) != nil else {
            throw HTTPError(status: 422, code: "invalid_query", detail: "k, ef or the vector does not fit the collection")
        }
        let now = services.clock.now()
        let result = try collection.exports.search(query.vector, k: query.k, ef: query.ef ?? definition.defaultEF, now: now.milliseconds)
        try await services.audit(AuditEvent(at: now, principal: "node:\(opened.node)", action: "vector.search.remote",
                                            purpose: definition.purpose.rawValue, outcome: "ok",
                                            detail: "collection=\(name),from=\(from),returned=\(result.hits.count)"))
        let answer = Answer(hits: result.hits.map { Hit(pid: $0.label, score: $0.score) }, asOf: now.milliseconds)
        let framed = FederationFrame.frame(Array(try JSONEncoder().encode(answer)), domain: answerDomain, node: services.configuration.node,
                                           key: services.keys.signing)
        return HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"],
                            body: services.keys.federationGossip.seal(framed, associatedData: answerAssociatedData))
    }
}
