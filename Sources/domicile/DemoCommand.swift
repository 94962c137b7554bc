import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicilePrivacy
import DomicileStorage
import Foundation

/// `domicile demo`: the main job. A local multi-region federation on the
/// embedded defaults, and a workload that walks through what Domicile does.
struct DemoCommand: Command {
    static let path = ["demo"]
    static let summary = "run a local 3-region federation with a demo workload"
    static let help = """
        [--dir DIR] [--keep]

        Lays out and starts nine nodes (regions eu, us, br; three each, sharing a region log) on
        loopback with the embedded default policy, then: registers subjects, following 421 answers to
        their home region, and calls a different node of the region for each step of a subject's life;
        records consent receipts and a Global Privacy Control signal; reads active consent; defines
        features and an event contract, ingests a minimized event, revokes and watches the features
        go; erases a subject (the region's leader signs for the region) and verifies the signed
        certificate; kills a node with SIGKILL and watches the federation notice, then restarts it;
        kills eu's leader during a write load, watches another take over, and reads every
        acknowledged write back through every eu node; verifies every region's audit chain. Stops the
        nodes at the end (--keep keeps DIR with keys, data and logs).
        """

    static func run(_ arguments: inout Arguments) async throws {
        let keep = arguments.flag("keep")
        let directory = try arguments.option("dir")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("domicile-demo-\(UUID().uuidString)").path
        try arguments.finish()
        let federation = try LocalFederation(directory: directory, regions: try ["eu", "us", "br"].map { try RegionID($0) },
                                             nodesPerRegion: 3)
        defer {
            federation.stopAll()
            if !keep { try? FileManager.default.removeItem(atPath: directory) }
        }

        step("Starting a federation of nine nodes (eu, us, br × 3, one region log per region) in \(directory)")
        for node in federation.nodeNames { try federation.start(node) }
        for node in federation.nodeNames { say("\(node)  http://\(federation.addresses[node]!)") }
        let converged = await waitUntil(seconds: 30) {
            for node in federation.nodeNames {
                if await federation.view(node).values.filter({ $0 == "alive" }).count != federation.nodeNames.count { return false }
                // Ready: joined, and its region log has a leader.
                if (try? await federation.call(node, "GET", "/readyz", role: "admin"))?.status != 200 { return false }
            }
            return true
        }
        guard converged else { throw CLIError.failed("the federation did not converge") }
        say("every node sees nine alive members (SWIM gossip, encrypted per pool); each region's log has elected a leader")

        step("Registering subjects: each identifier goes to its home region, never across the border")
        // Each step of a subject's life goes to another node of its region: registered on
        // REGION-1, consent on REGION-2, read on REGION-3; the region is one store.
        var pids: [String: (region: String, pid: String)] = [:]
        for (label, kind, value, country) in [("Anna", "email", "anna.schmidt@example.de", "DE"), ("Bo", "phone", "+14155550142", "US"),
                                              ("Clara", "customer_id", "CRM-BR-7731", "BR")] {
            var node = "eu-1"
            var reply = try await federation.call(node, "POST", "/v1/subjects", role: "ingest",
                                                  json: #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"},"country":"\#(country)"}"#)
            if reply.status == 421, let nodes = reply.json["nodes"] as? [[String: Any]], let name = nodes.first?["name"] as? String {
                say("\(label) (\(kind), \(country)): eu-1 answers 421, home region \(reply.json["home_region"] ?? "?"), live nodes "
                    + nodes.compactMap { $0["name"] as? String }.joined(separator: ", "))
                node = nodes.compactMap { $0["name"] as? String }.first { $0.hasSuffix("-1") } ?? name
                reply = try await federation.call(node, "POST", "/v1/subjects", role: "ingest",
                                                  json: #"{"identifier":{"kind":"\#(kind)","value":"\#(value)"},"country":"\#(country)"}"#)
            }
            guard reply.status == 201, let pid = reply.json["pid"] as? String else { throw CLIError.failed("registration failed: \(reply.status)") }
            say("\(label) registered on \(node): \(pid)")
            pids[label] = (String(node.prefix { $0 != "-" }), pid)
        }

        step("Consent: receipts are appended and hash-chained; GPC revokes the policy's gpc purposes")
        for label in ["Anna", "Bo", "Clara"] {
            let (region, pid) = pids[label]!
            let grant = try await federation.call("\(region)-2", "POST", "/v1/subjects/\(pid)/consents", role: "ingest", json: """
                {"action":"grant","purposes":["product_recs","marketing_email","analytics"],"source":"web-portal:v2","collected_at":"\(Timestamp.now.rfc3339)"}
                """)
            guard grant.status == 201 else { throw CLIError.failed("grant refused: \(grant.json["code"] ?? grant.status)") }
        }
        let (boRegion, boPID) = pids["Bo"]!
        _ = try await federation.call("\(boRegion)-2", "POST", "/v1/subjects/\(boPID)/consents", role: "ingest",
                                      json: #"{"action":"gpc","source":"browser:gpc","collected_at":"\#(Timestamp.now.rfc3339)"}"#)
        for label in ["Anna", "Bo", "Clara"] {
            let (region, pid) = pids[label]!
            let active = try await federation.call("\(region)-3", "GET", "/v1/subjects/\(pid)/consent", role: "serve")
            let purposes = (active.json["active"] as? [[String: Any]] ?? []).compactMap { $0["purpose"] as? String }
            say("\(label): active consent \(purposes.joined(separator: ", "))   (granted on \(region)-2, read on \(region)-3"
                + "\(label == "Bo" ? ", after a GPC signal" : ""))")
        }
        let unknown = try await federation.call("eu-1", "POST", "/v1/subjects/\(pids["Anna"]!.pid)/consents", role: "ingest",
                                                json: #"{"action":"grant","purposes":["sell_to_brokers"],"source":"x","collected_at":"\#(Timestamp.now.rfc3339)"}"#)
        say("a purpose the policy does not know: \(unknown.status) \(unknown.json["code"] ?? "")  (unknown means deny)")

        try await embeddingsAndAggregates(federation, anna: ("eu-2", pids["Anna"]!.pid))
        try await featuresAndErasure(federation, anna: pids["Anna"]!.pid, directory: directory)
        try await erasureWithARegionDown(federation, clara: pids["Clara"]!.pid)

        step("Failure detection: SIGKILL us-2, watch the others notice, restart it")
        federation.kill("us-2")
        let killedAt = Date()
        let detected = await waitUntil(seconds: 30) {
            for node in federation.nodeNames where node != "us-2" {
                if await federation.view(node)["us-2"] != "dead" { return false }
            }
            return true
        }
        say(detected ? String(format: "all eight others declared us-2 dead after %.1f s", Date().timeIntervalSince(killedAt))
                     : "us-2 was not declared dead in 30 s")
        try federation.start("us-2")
        let rejoined = await waitUntil(seconds: 30) {
            for node in federation.nodeNames {
                if await federation.view(node)["us-2"] != "alive" { return false }
            }
            return true
        }
        say(rejoined ? "us-2 restarted with a new boot id and rejoined" : "us-2 did not rejoin in 30 s")

        try await leaderKill(federation, region: "eu")

        step("Audit: every access was recorded in each region's hash chain")
        for node in ["eu-1", "us-1", "br-1"] {
            let verify = try await federation.call(node, "GET", "/v1/audit/verify", role: "privacy_officer")
            say("\(node): chain \((verify.json["valid"] as? Bool) == true ? "valid" : "BROKEN"), \(verify.json["length"] ?? 0) events")
        }
        step("Done")
        say(keep ? "keys, configs, data and logs kept in \(directory)" : "stopping the nodes (run with --keep to keep their data and logs)")
    }

    /// Features under consent, an event contract minimizing at ingestion,
    /// then Anna's erasure and what its signed request still waits for.
    /// Calls go to eu-1, eu-2 and eu-3 in turn: any node serves any call.
    static func featuresAndErasure(_ federation: LocalFederation, anna pid: String, directory: String) async throws {
        let node = "eu-1"
        step("Features: written under consent, minimized at ingestion, withheld once consent goes")
        for name in ["last_category", "last_seen_day", "network"] {
            _ = try await federation.call(node, "PUT", "/v1/feature-definitions/\(name)", role: "admin",
                                          json: #"{"type":"string","purpose":"product_recs","ttl_seconds":7776000,"classification":"behavioral"}"#)
        }
        _ = try await federation.call(node, "PUT", "/v1/contracts/page_view", role: "admin", json: """
            {"fields":{"category":{"type":"string","feature":"last_category"},
                       "seen_at":{"type":"timestamp","transform":"bucket_day","feature":"last_seen_day"},
                       "ip":{"type":"string","transform":"ip_prefix","feature":"network"},
                       "email":{"type":"string","identity":true,"transform":"drop"}}}
            """)
        let event = try await federation.call(node, "POST", "/v1/events/page_view", role: "ingest", json: """
            {"pid":"\(pid)","fields":{"category":"running shoes","seen_at":"\(Timestamp.now.rfc3339)","ip":"203.0.113.77",
                                      "email":"anna.schmidt@example.de"}}
            """)
        say("event page_view for Anna: \(event.status), features updated \((event.json["features_updated"] as? [String] ?? []).joined(separator: ", "))")
        let served = try await federation.call("eu-2", "GET", "/v1/subjects/\(pid)/features?purpose=product_recs", role: "serve")
        let features = (served.json["features"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        say("Anna's product_recs features, read on eu-2: \(features.joined(separator: ", "))   (raw IP, time and e-mail never stored)")
        let unknown = try await federation.call(node, "POST", "/v1/events/page_view", role: "ingest",
                                                json: #"{"pid":"\#(pid)","fields":{"category":"hats","referrer":"https://x.example"}}"#)
        let pii = try await federation.call(node, "POST", "/v1/events/page_view", role: "ingest",
                                            json: #"{"pid":"\#(pid)","fields":{"category":"call +49 151 2345 6789"}}"#)
        say("a field the contract does not allow: \(unknown.status) \(unknown.json["code"] ?? "");  a phone number in category: "
            + "\(pii.status) \(pii.json["code"] ?? "")")
        _ = try await federation.call("eu-3", "POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                                      json: #"{"action":"revoke","purposes":["product_recs"],"source":"web-portal:v2","collected_at":"\#(Timestamp.now.rfc3339)"}"#)
        let withheld = try await federation.call("eu-2", "GET", "/v1/subjects/\(pid)/features?purpose=product_recs", role: "serve")
        let names = (withheld.json["withheld"] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "?") (\($0["reason"] ?? "?"))" }
        say("after Anna revokes product_recs on eu-3, read on eu-2: served \((withheld.json["features"] as? [String: Any])?.count ?? 0), withheld "
            + names.joined(separator: ", ") + "; the values were purged with the revoke")
        let refused = try await federation.call(node, "PUT", "/v1/subjects/\(pid)/features", role: "ingest",
                                                json: #"{"values":{"last_category":"boots"}}"#)
        say("writing a product_recs feature now: \(refused.status) \(refused.json["code"] ?? "")")

        step("Erasure: Anna asks a node of us to forget her (an eu subject); one log entry erases her on every node of eu, the "
             + "request cascades to every region through the federation, each region acks once its nodes confirmed")
        let requested = try await federation.call("us-2", "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(pid)"}"#)
        guard requested.status == 202, let erasureID = requested.json["erasure_id"] as? String else {
            throw CLIError.failed("erasure refused: \(requested.status) \(requested.json["code"] ?? "")")
        }
        say("\(erasureID) \(requested.json["status"] ?? "?") on us-2: \(regionStates(requested.json))")
        let (erasure, seconds) = await completion(of: erasureID, readOn: "us-1", federation)
        guard let certificateObject = erasure.json["certificate"] else {
            throw CLIError.failed("erasure did not complete in 60 s: waiting for \(erasure.json["waiting_for"] ?? "?")")
        }
        say(String(format: "complete after %.1f s (read on us-1)", seconds))
        let certificateData = try JSONSerialization.data(withJSONObject: certificateObject, options: [.prettyPrinted, .sortedKeys])
        let certificate = try JSONDecoder().decode(ErasureCertificate.self, from: certificateData)
        let certificateFile = (directory as NSString).appendingPathComponent("erasure-certificate.json")
        try certificateData.write(to: URL(fileURLWithPath: certificateFile))
        say("\(certificate.request.erasureID) \(erasure.json["status"] ?? "?"), due \(erasure.json["due_at"] ?? "?") "
            + "(\(certificate.request.jurisdiction)); acks:")
        for ack in certificate.acks {
            let counts = ack.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            say("  \(ack.node) (scope \(ack.scope.rawValue)) erased: \(counts)")
        }
        let problems = certificate.problems(trusted: try trustedKeys(of: certificate, directory: directory))
        say("certificate against the nodes' public keys: \(problems.isEmpty ? "valid and complete" : "INVALID: \(problems)")"
            + "; offline (with --keep): domicile erasure verify \(certificateFile) --trust KEYS (domicile keys export-public)")
        let lookup = try await federation.call("eu-1", "POST", "/v1/subjects/lookup", role: "serve",
                                               json: #"{"identifier":{"kind":"email","value":"anna.schmidt@example.de"}}"#)
        let history = try await federation.call("eu-2", "GET", "/v1/subjects/\(pid)/consents", role: "privacy_officer")
        say("lookup of Anna on eu-1: \(lookup.status) \(lookup.json["code"] ?? "");  her receipts on eu-2: \((history.json["receipts"] as? [Any])?.count ?? 0) "
            + "redacted to their hashes, chain \((history.json["chain_valid"] as? Bool) == true ? "still valid" : "BROKEN")")
    }

    /// The signing keys of every node the certificate expects, read from their keyrings (what `keys export-public` prints).
    static func trustedKeys(of certificate: ErasureCertificate, directory: String) throws -> ErasureTrust {
        let master = try MasterKeySource.file(path: (directory as NSString).appendingPathComponent("master.key")).load()
        var trusted = ErasureTrust()
        for (region, nodes) in certificate.request.expectedNodes {
            for node in nodes {
                let keyring = try KeyringFile.load(path: (directory as NSString).appendingPathComponent("\(node)/\(node).keyring"),
                                                   master: master)
                for entry in keyring.versions(of: .nodeSigning) {
                    trusted.trust(try Ed25519PrivateKey(seed: entry.material).publicKey, region: region, node: node)
                }
            }
        }
        return trusted
    }

    static func step(_ text: String) { Output.line("\n== \(text)") }

    /// `eu erased, us pending, …` from an erasure's `regions`.
    static func regionStates(_ json: [String: Any]) -> String {
        (json["regions"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// Polls an erasure until it completes (60 s at most): its last state, and the seconds it took.
    static func completion(of id: String, readOn node: String, _ federation: LocalFederation) async -> (LocalFederation.Reply, Double) {
        let started = Date()
        var last = LocalFederation.Reply(status: 0, json: [:])
        _ = await waitUntil(seconds: 60) {
            guard let state = try? await federation.call(node, "GET", "/v1/erasures/\(id)", role: "privacy_officer") else { return false }
            last = state
            return state.json["status"] as? String == "complete"
        }
        return (last, Date().timeIntervalSince(started))
    }

    /// An erasure started while a region is stopped: pending, naming it; complete once it is back.
    static func erasureWithARegionDown(_ federation: LocalFederation, clara pid: String) async throws {
        step("Erasure with a region cut off: br stopped, Clara (a br subject) asks eu-1 to forget her")
        for node in ["br-1", "br-2", "br-3"] { federation.kill(node) }
        let requested = try await federation.call("eu-1", "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(pid)"}"#)
        guard requested.status == 202, let erasureID = requested.json["erasure_id"] as? String else {
            throw CLIError.failed("erasure refused: \(requested.status) \(requested.json["code"] ?? "")")
        }
        var pending = requested
        _ = await waitUntil(seconds: 30) {
            guard let state = try? await federation.call("eu-2", "GET", "/v1/erasures/\(erasureID)", role: "privacy_officer") else { return false }
            pending = state
            return (state.json["regions"] as? [String: String])?.filter({ $0.value == "pending" }).keys.sorted() == ["br"]
        }
        let br = (pending.json["region_status"] as? [String: [String: Any]])?["br"] ?? [:]
        say("\(erasureID) \(pending.json["status"] ?? "?") on eu-2: \(regionStates(pending.json)); waiting for "
            + "\((pending.json["waiting_for"] as? [String] ?? []).joined(separator: ", ")) (br: \(br["code"] as? String ?? "?"), "
            + "last contact \(br["last_contact"] as? String ?? "never"))")
        for node in ["br-1", "br-2", "br-3"] { try federation.start(node) }
        let (done, seconds) = await completion(of: erasureID, readOn: "eu-3", federation)
        guard done.json["status"] as? String == "complete" else { throw CLIError.failed("the erasure did not complete once br was back") }
        let acks = ((done.json["certificate"] as? [String: Any])?["acks"] as? [[String: Any]] ?? []).compactMap { $0["region"] as? String }
        say(String(format: "br restarted: complete %.1f s later, with acks of %@", seconds, acks.sorted().joined(separator: ", ")))
    }
    static func say(_ text: String) { Output.line("   \(text)") }

    static func waitUntil(seconds: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return true }
            try? await Task.sleep(nanoseconds: 200_000_000)
        }
        return await condition()
    }
}

extension Timestamp {
    /// The wall clock, for the demo's `collected_at` values.
    static var now: Timestamp { Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1_000)) }
}
