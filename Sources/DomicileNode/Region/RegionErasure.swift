import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import Foundation

/// The erasure's way to the other nodes of its region.
///
/// Without a region log each node holds only what it was sent, so each must
/// erase and sign for itself (scope `node`): the origin sends the signed
/// request and its target to every other expected node of its region, each
/// erases what it holds, truncates its WAL and answers with its own signed
/// ack, which the origin records. A node that does not answer within
/// `timeoutMilliseconds` stays in `waiting_for_nodes` and the request stays
/// pending (docs/DECISIONS.md, "Erasure across the nodes of a region").
///
/// With a region log the erasure is an entry every node applies, so the
/// order names no subject: the leader asks each other member to confirm that
/// it applied the log up to the erasure and truncated its WAL, and each
/// answers with its own signed `node` ack; with every member's, the leader
/// signs the region's one ack (scope `region`) — never on behalf of a node
/// that has not confirmed (docs/DECISIONS.md, "Erasure in a region with a
/// log").
///
/// The exchange is sealed both ways under the region's gossip key, which
/// only the region's nodes hold (the associated data keeps it apart from
/// gossip packets): that authenticates the peer as a node of the region and
/// keeps the identifier, which never leaves the region, off the wire in
/// clear. An order to erase is refused once five minutes old, and one about
/// a pid must match its signed link hash; a replay within that window erases
/// nothing new, and its second ack is refused by the origin. A confirmation
/// erases nothing, so it may be asked again at any time.
enum RegionErasure {
    static let path = "/internal/v1/erasures"
    /// Above what a peer's erasure may take: its read grace before destroying
    /// key versions (2 s), two keyring fsyncs and its WAL checkpoint.
    static let timeoutMilliseconds: Int64 = 10_000
    /// How long a member may take to apply the erasure before it confirms;
    /// one still behind is asked again later (`ErasureConfirmations`).
    static let applyWaitMilliseconds: Int64 = 2_000
    /// A confirmation: the apply wait, a WAL checkpoint, a signature.
    static let confirmTimeoutMilliseconds: Int64 = 4_000
    /// An order is a few kilobytes; no more than a refused request may make
    /// the server hold (the route has no bearer token to admit it by).
    static let bodyBytesMax = 16 * 1_024
    /// How old (or, for clock skew, how far ahead) an order may be: the
    /// origin sends it right after signing, so a replay is refused soon after.
    static let freshnessMilliseconds: Int64 = 5 * 60_000
    static let orderAssociatedData = Array("domicile/region-erasure/order/v1".utf8)
    static let answerAssociatedData = Array("domicile/region-erasure/ack/v1".utf8)
    // Plain JSON coders: the documents name their members themselves (as the certificate does).

    /// What the origin sends: the signed request and whom it is about; or,
    /// in a region with a log, the signed request and the leader's applied
    /// index once the erasure committed (the member confirms once it has
    /// applied as far).
    struct Order: Codable {
        let request: SignedErasureRequest
        let pid: String?
        let identifier: IdentifierDocument?
        let appliedIndex: UInt64?

        init(request: SignedErasureRequest, pid: String? = nil, identifier: IdentifierDocument? = nil, appliedIndex: UInt64? = nil) {
            self.request = request
            self.pid = pid
            self.identifier = identifier
            self.appliedIndex = appliedIndex
        }
    }

    struct IdentifierDocument: Codable {
        let kind: IdentifierKind
        let value: String
    }

    struct Answer: Codable {
        let ack: ErasureCertificate.AckDocument
    }

    // MARK: The origin

    /// Asks every other expected node of this region to erase, concurrently.
    /// Returns the acks that answer `signed` from the node asked; a node that
    /// is unknown, silent or answers anything else is logged and left waiting.
    static func ask(peersOf signed: SignedErasureRequest, target: ErasureService.Target, services: NodeServices) async -> [ErasureAck] {
        let me = services.configuration.node.rawValue
        let order: Order
        switch target {
        case .pid(let pid): order = Order(request: signed, pid: pid.rawValue)
        case .identifier(let identifier):
            order = Order(request: signed, identifier: IdentifierDocument(kind: identifier.kind, value: identifier.value))
        case .intent:
            // Another region's intent is acted on through a region log only (FederationSync).
            return []
        }
        let peers = (signed.expectedNodes[services.region] ?? []).filter { $0 != me }
        return await fanOut(order, to: peers, timeoutMilliseconds: timeoutMilliseconds, services: services)
    }

    /// In a region with a log: the region's ack for `signed`, signed here,
    /// once every other member of the log has confirmed with its own signed
    /// ack that it applied this node's log up to `appliedIndex` (which holds
    /// the erasure) and truncated its WAL; nil while one has not.
    static func regionAck(for signed: SignedErasureRequest, counts: [String: Int64], walTruncated: Bool, appliedIndex: UInt64,
                          log: RegionLog, services: NodeServices) async -> ErasureAck? {
        let status = log.status
        let members = Set(status.voters + status.learners).subtracting([services.configuration.node]).map(\.rawValue).sorted()
        let confirmations = await fanOut(Order(request: signed, appliedIndex: appliedIndex), to: members,
                                         timeoutMilliseconds: confirmTimeoutMilliseconds, services: services)
        guard confirmations.count == members.count else { return nil }
        return ErasureAck.signed(for: signed, region: services.region, node: services.configuration.node.rawValue, scope: .region,
                                 erasedAt: max(signed.requestedAt, services.clock.now()), counts: counts,
                                 walTruncated: walTruncated && confirmations.allSatisfy(\.walTruncated),
                                 policyVersion: Int64(services.policy.version), key: services.keys.signing)
    }

    /// Sends `order` to each of `peers` concurrently; returns the acks that
    /// answer it from the node asked, for itself.
    private static func fanOut(_ order: Order, to peers: [String], timeoutMilliseconds: Int64,
                               services: NodeServices) async -> [ErasureAck] {
        let signed = order.request
        guard !peers.isEmpty, let plaintext = try? JSONEncoder().encode(order) else { return [] }
        let addresses = Dictionary(services.gossip.value?.members(of: .region).map { ($0.name.rawValue, $0.identity.httpAddress) } ?? [],
                                   uniquingKeysWith: { first, _ in first })
        let sealed = services.keys.regionGossip.seal(Array(plaintext), associatedData: orderAssociatedData)
        return await withTaskGroup(of: ErasureAck?.self) { group in
            for peer in peers {
                group.addTask {
                    do {
                        let (status, body): (Int, [UInt8])
                        if let log = services.regionLog.value {
                            // The region's members, by name over the region channel.
                            let call = ForwardedCall.Request(method: "POST", target: path, headers: [], body: sealed,
                                                             requestID: "erasure-\(signed.erasureID)")
                            guard case .response(let answered, _, let answer, _) = try await log.call(
                                try NodeName(peer), call, timeoutMilliseconds: timeoutMilliseconds) else { throw Failure.status(503) }
                            (status, body) = (answered, answer)
                        } else {
                            guard let address = addresses[peer] else { throw Failure.unknownAddress }
                            (status, body) = try await send(sealed, to: address, timeoutMilliseconds: timeoutMilliseconds, services: services)
                        }
                        guard status == 200 else { throw Failure.status(status) }
                        let plaintext = try services.keys.regionGossip.open(body, associatedData: answerAssociatedData)
                        let ack = try JSONDecoder().decode(Answer.self, from: Data(plaintext)).ack.ack(erasureID: signed.erasureID, index: 0)
                        guard ack.node == peer, ack.region == services.region, ack.isValid, ack.requestHash == signed.hash,
                              ack.linkHash == signed.linkHash, ack.erasureID == signed.erasureID,
                              ack.erasedAt >= signed.requestedAt, ack.scope == .node,
                              ack.counts.allSatisfy({ ErasureRecords.countedTables.contains($0.key) && $0.value >= 0 }) else {
                            throw Failure.unexpectedAck
                        }
                        return ack
                    } catch {
                        services.logger.warning("erasure not acked by a node of the region", [
                            "erasure_id": .string(signed.erasureID), "node": .string(peer), "error": .string("\(error)")])
                        return nil
                    }
                }
            }
            var acks: [ErasureAck] = []
            for await ack in group { if let ack { acks.append(ack) } }
            return acks
        }
    }

    enum Failure: Error, CustomStringConvertible {
        case unknownAddress
        case status(Int)
        case unexpectedAck

        var description: String {
            switch self {
            case .unknownAddress: return "the node's address is unknown"
            case .status(let status): return "the node answered \(status)"
            case .unexpectedAck: return "the node's ack does not answer this request"
            }
        }
    }

    private static func send(_ sealed: [UInt8], to address: String, timeoutMilliseconds: Int64,
                             services: NodeServices) async throws -> (status: Int, body: [UInt8]) {
        var headers = HTTPHeaders()
        headers.set("Content-Type", "application/octet-stream")
        let response = try await services.peerClient.send("POST", path, to: try SocketAddress(parsing: address), headers: headers,
                                                          body: sealed, timeoutMilliseconds: timeoutMilliseconds)
        return (response.status, response.body)
    }

    // MARK: A peer

    /// `POST /internal/v1/erasures`: a sealed order from a node of this
    /// region; erases here and answers with this node's sealed ack.
    static func add(to api: inout API) {
        let services = api.services
        api.peer("POST", path, bodyBytesMax: bodyBytesMax) { request in
            guard let plaintext = try? services.keys.regionGossip.open(request.body, associatedData: orderAssociatedData) else {
                throw HTTPError(status: 403, code: "not_a_region_node", detail: "the body is not sealed by a node of this region")
            }
            guard let order = try? JSONDecoder().decode(Order.self, from: Data(plaintext)) else {
                throw HTTPError(status: 400, code: "invalid_order", detail: "the erasure order does not decode")
            }
            let ack = try await obey(order, services: services)
            let answer = try JSONEncoder().encode(Answer(ack: ErasureCertificate.AckDocument(ack)))
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"],
                                body: services.keys.regionGossip.seal(Array(answer), associatedData: answerAssociatedData))
        }
    }

    /// Erases what `order` names on this node, if the order is one this node
    /// must answer: signed, for this region, naming this node, fresh, and
    /// about the subject its signed link hash names. In a region with a log,
    /// confirms it instead.
    static func obey(_ order: Order, services: NodeServices) async throws -> ErasureAck {
        if let log = services.regionLog.value { return try await confirm(order, log: log, services: services) }
        let signed = order.request
        let now = services.clock.now()
        guard signed.isValid, signed.originRegion == services.region,
              signed.expectedNodes[services.region]?.contains(services.configuration.node.rawValue) == true else {
            throw HTTPError(status: 422, code: "invalid_order", detail: "the erasure order is not signed for this node")
        }
        guard abs(now.milliseconds - signed.requestedAt.milliseconds) <= freshnessMilliseconds else {
            throw HTTPError(status: 422, code: "stale_order", detail: "the erasure order was not signed within the last five minutes")
        }
        let target: ErasureService.Target
        switch (order.pid, order.identifier) {
        case (let text?, nil):
            guard let pid = try? PID(parsing: text), pid.region == services.region else {
                throw HTTPError(status: 422, code: "invalid_order", detail: "the erasure order names a pid of another region")
            }
            // The origin signed the hash of the subject's link if it held it, else of the pid; held here, it must be one of them.
            let held = try ErasureService.linkHash(of: .pid(pid), services)
            guard held == signed.linkHash || SignedErasureRequest.linkHash(pid: pid) == signed.linkHash else {
                throw HTTPError(status: 422, code: "invalid_order", detail: "the erasure order's pid does not match its link hash")
            }
            target = .pid(pid)
        case (nil, let document?):
            guard let identifier = try? Identifier(kind: document.kind, raw: document.value),
                  try ErasureService.linkHash(of: .identifier(identifier), services) == signed.linkHash else {
                throw HTTPError(status: 422, code: "invalid_order", detail: "the erasure order's identifier does not match its link hash")
            }
            target = .identifier(identifier)
        default:
            throw HTTPError(status: 422, code: "invalid_order", detail: "the erasure order names no subject")
        }
        let counts = try await ErasureService.erase(target, services: services) { pid in
            AuditEvent(at: now, principal: "node:\(signed.originNode)", action: "erasure.erase", pid: pid.rawValue, outcome: "erased",
                       detail: "erasure_id=\(signed.erasureID)")
        }
        let walTruncated = await ErasureService.truncateWAL(services)
        services.metrics.countAudit(action: "erasure.erase", outcome: "erased")
        // Never before the request, whatever the skew between this node's clock and the origin's.
        return ErasureAck.signed(for: signed, region: services.region, node: services.configuration.node.rawValue,
                                 erasedAt: max(signed.requestedAt, now, services.clock.now()), counts: counts,
                                 walTruncated: walTruncated, policyVersion: Int64(services.policy.version), key: services.keys.signing)
    }

    /// In a region with a log: this node's signed ack that it applied the
    /// erasure `order` names (its log up to the order's index, which holds
    /// the signed request as recorded) and truncated its WAL. It erases
    /// nothing itself: the erasure's entry did. Its counts are the rows that
    /// entry removed, the same on every member (a changeset applies exactly
    /// or not at all).
    static func confirm(_ order: Order, log: RegionLog, services: NodeServices) async throws -> ErasureAck {
        let signed = order.request
        guard signed.isValid, signed.expectedNodes[services.region] != nil, let index = order.appliedIndex else {
            throw HTTPError(status: 422, code: "invalid_order", detail: "the erasure order is not one this region's log confirms")
        }
        guard await log.waitApplied(index, until: monotonicMilliseconds() + applyWaitMilliseconds) else {
            throw HTTPError(status: 503, code: "not_applied", detail: "this node has not applied the erasure yet")
        }
        let counts = try services.store.read { database -> [String: Int64]? in
            guard try ErasureRecords.find(signed.erasureID, in: database)?.signed?.hash == signed.hash else { return nil }
            return try ErasureRecords.localCounts(of: signed.erasureID, in: database)
        }
        guard let counts else {
            throw HTTPError(status: 409, code: "unknown_erasure", detail: "this node's applied log holds no such erasure")
        }
        let walTruncated = await ErasureService.truncateWAL(services)
        return ErasureAck.signed(for: signed, region: services.region, node: services.configuration.node.rawValue,
                                 erasedAt: max(signed.requestedAt, services.clock.now()), counts: counts, walTruncated: walTruncated,
                                 policyVersion: Int64(services.policy.version), key: services.keys.signing)
    }
}
