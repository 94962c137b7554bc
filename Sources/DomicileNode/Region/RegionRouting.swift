import DomicileNet

/// Where a client's call runs in a region with a log: on the leader. A
/// follower hands the call, already admitted, to the leader over the
/// region channel and relays its answer once it has applied what the
/// leader had (docs/REGION_LOG.md, "Any node serves any request").
///
/// Reads go to the leader too: every read of personal data appends an
/// audit event through the log before the data leaves, and a leader's
/// entry commits only while it still leads a majority, so the data it read
/// includes every revocation acknowledged before the read began.
enum RegionRouting {
    /// True while the leader runs a call a follower forwarded: it is never
    /// forwarded again.
    @TaskLocal static var isForwarded = false

    /// The routes the nodes of a region call on each other.
    static let internalPrefix = "/internal/"

    /// Headers of the leader's answer the answering server sets itself.
    private static let hopHeaders: Set<String> = ["content-length", "connection", "transfer-encoding", "date", "x-request-id", "keep-alive"]

    /// nil: serve the call here. Otherwise the leader's answer.
    static func forwardIfNeeded(_ request: HTTPRequest, services: NodeServices) async throws -> HTTPResponse? {
        guard let log = services.regionLog.value, !isForwarded else { return nil }
        if log.isServingLeader { return nil }
        if log.status.role == .leader {
            // Just elected: serve once what earlier leaders committed is applied here.
            let timeout = log.settings.tickMilliseconds * Int64(log.settings.electionTicks)
            if await log.waitServingLeader(until: monotonicMilliseconds() + timeout) { return nil }
        }
        let call = ForwardedCall.Request(method: request.method, target: request.target, headers: request.headers.fields,
                                         body: request.body, requestID: request.requestID)
        guard case .response(let status, let fields, let body, _) = try await log.forward(call) else {
            throw NoQuorum(reason: "no leader of the region answered")
        }
        var headers = HTTPHeaders()
        for field in fields where !hopHeaders.contains(field.name.lowercased()) { headers.add(field.name, field.value) }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// The leader's side: runs a follower's call through the routes. A call
    /// between the region's nodes (`/internal/`, `RegionLog.call`) is for
    /// the node asked, leader or not.
    static func serve(_ call: ForwardedCall.Request, router: Router, log: RegionLog) async -> ForwardedCall.Answer {
        if !call.target.hasPrefix(internalPrefix) {
            guard await log.waitServingLeader(until: monotonicMilliseconds() + log.settings.tickMilliseconds * 5) else { return .notLeader }
        }
        var headers = HTTPHeaders()
        for field in call.headers { headers.add(field.name, field.value) }
        let request = HTTPRequest(method: call.method, target: call.target, headers: headers, body: call.body)
        let response = await $isForwarded.withValue(true) { await router.respond(to: request, requestID: call.requestID) }
        return .response(status: response.status, headers: response.headers.fields, body: response.body, appliedIndex: log.appliedIndex)
    }
}
