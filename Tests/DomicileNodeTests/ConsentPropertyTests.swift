@testable import DomicileNode
import DomicileModel
import DomicileNet
import DomicileTestSupport
import Foundation
import XCTest

/// A clock the test moves by hand.
final class ManualClock: Clock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Timestamp

    init(_ start: Timestamp) { current = start }

    func now() -> Timestamp {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    func advance(milliseconds: Int64) {
        lock.lock()
        current = current.adding(milliseconds: milliseconds)
        lock.unlock()
    }
}

/// Invariant 2 as a property: over random interleavings of grants (with and
/// without expiry), revocations, GPC signals, feature writes, time passing
/// and retention sweeps, a node running in-process on a manual clock serves
/// exactly what a small model says may be served — never a value whose
/// purpose is not covered at the time of the read, never one past its TTL.
final class ConsentPropertyTests: XCTestCase {
    struct FeatureSpec {
        let name: String
        let purpose: String
        let ttlSeconds: Int64
    }

    static let features = [
        FeatureSpec(name: "recs_a", purpose: "product_recs", ttlSeconds: 100),
        FeatureSpec(name: "recs_b", purpose: "product_recs", ttlSeconds: 1_000),
        FeatureSpec(name: "mail_topic", purpose: "marketing_email", ttlSeconds: 500),
        FeatureSpec(name: "churn", purpose: "analytics", ttlSeconds: 300),
        FeatureSpec(name: "fraud", purpose: "fraud_prevention", ttlSeconds: 200),
    ]
    static let purposes = ["product_recs", "marketing_email", "analytics", "fraud_prevention"]
    static let gpcPurposes: Set<String> = ["product_recs", "marketing_email"]
    /// The default policy's non-consent basis in eu.
    static let basisCovered: Set<String> = ["fraud_prevention"]

    /// What the node should hold for one subject.
    struct SubjectModel {
        var grants: [String: Int64?] = [:]
        var stored: [String: (value: Int, writtenAt: Int64)] = [:]

        func covered(_ purpose: String, now: Int64) -> Bool {
            if ConsentPropertyTests.basisCovered.contains(purpose) { return true }
            guard let grant = grants[purpose] else { return false }
            return grant.map { now < $0 } ?? true
        }

        /// A receipt ended `ended` purposes (and any grant already expired): their data goes.
        mutating func endGrants(_ ended: Set<String>, now: Int64) {
            let expired = grants.filter { $0.value.map { $0 <= now } ?? false }.keys
            let purged = ended.intersection(grants.keys).union(expired).subtracting(ConsentPropertyTests.basisCovered)
            stored = stored.filter { name, _ in !purged.contains(ConsentPropertyTests.purpose(of: name)) }
        }
    }

    static func purpose(of feature: String) -> String { features.first { $0.name == feature }!.purpose }

    func test_noFeatureIsServedWithoutCoverage_overRandomHistories() async throws {
        for seed: UInt64 in [1, 2, 3] {
            try await run(seed: seed, operations: 300)
        }
    }

    func run(seed: UInt64, operations: Int) async throws {
        let federation = try FederationFixture(regions: ["eu", "us"])
        var configuration = try NodeConfiguration.load(path: federation.configPath("eu-1"))
        configuration.gossip.address = nil
        configuration.accessLog = false
        configuration.limits.retentionSweepIntervalMilliseconds = 86_400_000
        let clock = ManualClock(Timestamp(seconds: 1_800_000_000))
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let node = try await Node.start(configuration, clock: clock, logger: Logger(clock: clock, descriptor: devNull))
        let client = federation.client
        func call(_ method: String, _ path: String, _ role: String, _ json: String? = nil) async throws -> (Int, [String: Any]) {
            var headers = HTTPHeaders()
            headers.set("Authorization", "Bearer \(federation.token(role))")
            if json != nil { headers.set("Content-Type", "application/json") }
            let response = try await client.send(method, path, to: node.httpAddress, headers: headers, body: Array((json ?? "").utf8))
            return (response.status, (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:])
        }
        try await shuttingDown(node) {

            for feature in Self.features {
                let (status, _) = try await call("PUT", "/v1/feature-definitions/\(feature.name)", "admin",
                                                 #"{"type":"number","purpose":"\#(feature.purpose)","ttl_seconds":\#(feature.ttlSeconds),"classification":"behavioral"}"#)
                XCTAssertEqual(status, 201)
            }
            var pids: [String] = []
            for index in 0..<3 {
                let (_, body) = try await call("POST", "/v1/subjects", "ingest", #"{"identifier":{"kind":"customer_id","value":"prop-\#(seed)-\#(index)"},"region":"eu"}"#)
                pids.append(try XCTUnwrap(body["pid"] as? String))
            }
            var models = [SubjectModel](repeating: SubjectModel(), count: pids.count)
            var random = SeededRandom(seed: seed)
            let context = "seed \(seed)"

            for step in 0..<operations {
                let subject = Int.random(in: 0..<pids.count, using: &random)
                let pid = pids[subject]
                let now = clock.now().milliseconds
                let at = clock.now().rfc3339
                func somePurposes() -> [String] {
                    let chosen = Self.purposes.filter { _ in Bool.random(using: &random) }
                    return chosen.isEmpty ? [Self.purposes.randomElement(using: &random)!] : chosen
                }
                switch Int.random(in: 0..<100, using: &random) {
                case 0..<20:
                    let purposes = somePurposes()
                    let expiry: Int64? = Bool.random(using: &random) ? now + Int64.random(in: 1...400, using: &random) * 1_000 : nil
                    let expiryField = expiry.map { #","expires_at":"\#(Timestamp(milliseconds: $0).rfc3339)""# } ?? ""
                    let list = purposes.map { "\"\($0)\"" }.joined(separator: ",")
                    let (status, _) = try await call("POST", "/v1/subjects/\(pid)/consents", "ingest",
                                                     #"{"action":"grant","purposes":[\#(list)],"source":"prop","collected_at":"\#(at)"\#(expiryField)}"#)
                    XCTAssertEqual(status, 201, context)
                    models[subject].endGrants([], now: now)
                    for purpose in purposes { models[subject].grants[purpose] = .some(expiry) }
                case 20..<30:
                    let purposes = somePurposes()
                    let list = purposes.map { "\"\($0)\"" }.joined(separator: ",")
                    let (status, _) = try await call("POST", "/v1/subjects/\(pid)/consents", "ingest",
                                                     #"{"action":"revoke","purposes":[\#(list)],"source":"prop","collected_at":"\#(at)"}"#)
                    XCTAssertEqual(status, 201, context)
                    models[subject].endGrants(Set(purposes), now: now)
                    for purpose in purposes { models[subject].grants[purpose] = nil }
                case 30..<35:
                    let (status, _) = try await call("POST", "/v1/subjects/\(pid)/consents", "ingest",
                                                     #"{"action":"gpc","source":"prop","collected_at":"\#(at)"}"#)
                    XCTAssertEqual(status, 201, context)
                    models[subject].endGrants(Self.gpcPurposes, now: now)
                    for purpose in Self.gpcPurposes { models[subject].grants[purpose] = nil }
                case 35..<65:
                    let chosen = Self.features.filter { _ in Bool.random(using: &random) }
                    guard !chosen.isEmpty else { continue }
                    let values = Dictionary(uniqueKeysWithValues: chosen.map { ($0.name, Int.random(in: 0..<1_000_000, using: &random)) })
                    let json = values.map { #""\#($0.key)":\#($0.value)"# }.joined(separator: ",")
                    let (status, _) = try await call("PUT", "/v1/subjects/\(pid)/features", "ingest", #"{"values":{\#(json)}}"#)
                    let allowed = chosen.allSatisfy { models[subject].covered($0.purpose, now: now) }
                    XCTAssertEqual(status, allowed ? 200 : 403, "\(context) step \(step): write of \(values.keys.sorted())")
                    if allowed { for (name, value) in values { models[subject].stored[name] = (value, now) } }
                case 65..<80:
                    clock.advance(milliseconds: Int64.random(in: 0...200_000, using: &random))
                case 80..<85:
                    try await RetentionSweeper.sweep(node.services, now: clock.now())
                    for index in models.indices {
                        let expired = models[index].grants.filter { $0.value.map { $0 <= now } ?? false }.keys
                        models[index].endGrants([], now: now)
                        for purpose in expired { models[index].grants[purpose] = nil }
                        models[index].stored = models[index].stored.filter { name, entry in
                            entry.writtenAt + Self.features.first { $0.name == name }!.ttlSeconds * 1_000 > now
                        }
                    }
                default:
                    let purpose = Self.purposes.randomElement(using: &random)!
                    let (status, body) = try await call("GET", "/v1/subjects/\(pid)/features?purpose=\(purpose)", "serve")
                    XCTAssertEqual(status, 200, context)
                    let served = (body["features"] as? [String: Any] ?? [:]).mapValues { ($0 as? Double).map { Int($0) } ?? -1 }
                    let withheld = Dictionary(uniqueKeysWithValues: (body["withheld"] as? [[String: String]] ?? []).map { ($0["name"]!, $0["reason"]!) })
                    let model = models[subject]
                    let definitions = Self.features.filter { $0.purpose == purpose }
                    var expectedServed: [String: Int] = [:]
                    var expectedWithheld: [String: String] = [:]
                    if !model.covered(purpose, now: now) {
                        for feature in definitions { expectedWithheld[feature.name] = "no_consent" }
                    } else {
                        for feature in definitions {
                            guard let entry = model.stored[feature.name] else { continue }
                            if entry.writtenAt + feature.ttlSeconds * 1_000 > now { expectedServed[feature.name] = entry.value }
                            else { expectedWithheld[feature.name] = "expired" }
                        }
                    }
                    XCTAssertEqual(served, expectedServed, "\(context) step \(step): served \(purpose)")
                    XCTAssertEqual(withheld, expectedWithheld, "\(context) step \(step): withheld \(purpose)")
                    if served != expectedServed || withheld != expectedWithheld { return }
                }
            }
        }
    }
}
