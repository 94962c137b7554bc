import DomicileClient
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
                                             nodesPerRegion: 3, tls: true)
        defer {
            federation.stopAll()
            if !keep { try? FileManager.default.removeItem(atPath: directory) }
        }

        step("Starting a federation of nine nodes (eu, us, br × 3, one region log per region) in \(directory)")
        for node in federation.nodeNames { try federation.start(node) }
        for node in federation.nodeNames { say("\(node)  https://\(federation.addresses[node]!)") }
        say("TLS 1.3 everywhere: a local CA (\(federation.caFile ?? "")) signed each node's certificate; clients and nodes verify it")
        let converged = await waitUntil(seconds: 30) {
            for node in federation.nodeNames {
                if await federation.view(node).values.filter({ $0 == "alive" }).count != federation.nodeNames.count { return false }
                // Ready: joined, and its region log has a leader.
                if (try? await federation.node(node, as: "admin").readiness())?.isReady != true { return false }
            }
            return true
        }
        guard converged else { throw CLIError.failed("the federation did not converge") }
        say("every node sees nine alive members (SWIM gossip, encrypted per pool); each region's log has elected a leader")

        step("Registering subjects: each identifier goes to its home region, never across the border")
        // Each step of a subject's life goes to another node of its region: registered on
        // REGION-1, consent on REGION-2, read on REGION-3; the region is one store.
        var pids: [String: (region: String, pid: String)] = [:]
        for (label, kind, value, country) in [("Anna", SubjectIdentifier.Kind.email, "anna.schmidt@example.de", "DE"),
                                              ("Bo", .phone, "+14155550142", "US"), ("Clara", .customerID, "CRM-BR-7731", "BR")] {
            // eu-1's client does not follow a 421, so the demo can show it and pick the home region's node itself.
            var node = "eu-1"
            let identifier = SubjectIdentifier(kind: kind, value: value)
            var registered: Registration
            do {
                registered = try await federation.node(node, as: "ingest").register(identifier, home: .country(country))
            } catch let problem as DomicileProblem where problem.status == 421 && !problem.nodes.isEmpty {
                say("\(label) (\(kind.rawValue), \(country)): eu-1 answers 421, home region \(problem.homeRegion ?? "?"), live nodes "
                    + problem.nodes.map(\.name).joined(separator: ", "))
                node = problem.nodes.map(\.name).first { $0.hasSuffix("-1") } ?? problem.nodes[0].name
                registered = try await federation.node(node, as: "ingest").register(identifier, home: .country(country))
            }
            guard registered.created else { throw CLIError.failed("registration failed: 200") }
            say("\(label) registered on \(node): \(registered.pid)")
            pids[label] = (String(node.prefix { $0 != "-" }), registered.pid)
        }

        step("Consent: receipts are appended and hash-chained; GPC revokes the policy's gpc purposes")
        for label in ["Anna", "Bo", "Clara"] {
            let (region, pid) = pids[label]!
            let grant = ConsentRequest.grant(["product_recs", "marketing_email", "analytics"], source: "web-portal:v2",
                                             collectedAt: Timestamp.now.rfc3339)
            if let refused = try await refusal(of: { _ = try await federation.node("\(region)-2", as: "ingest").appendConsent(grant, for: pid) }) {
                throw CLIError.failed("grant refused: \(refused.code)")
            }
        }
        let (boRegion, boPID) = pids["Bo"]!
        _ = try await refusal(of: {
            _ = try await federation.node("\(boRegion)-2", as: "ingest").appendConsent(.gpc(source: "browser:gpc", collectedAt: Timestamp.now.rfc3339),
                                                                                     for: boPID)
        })
        for label in ["Anna", "Bo", "Clara"] {
            let (region, pid) = pids[label]!
            let purposes = try await federation.node("\(region)-3", as: "serve").consent(of: pid).purposes
            say("\(label): active consent \(purposes.joined(separator: ", "))   (granted on \(region)-2, read on \(region)-3"
                + "\(label == "Bo" ? ", after a GPC signal" : ""))")
        }
        let unknown = try await refusal(of: {
            _ = try await federation.node("eu-1", as: "ingest").appendConsent(.grant(["sell_to_brokers"], source: "x", collectedAt: Timestamp.now.rfc3339),
                                                                               for: pids["Anna"]!.pid)
        })
        say("a purpose the policy does not know: \(outcome(unknown, success: 201))  (unknown means deny)")

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
            let verify = try await federation.node(node, as: "privacy_officer").verifyAudit()
            say("\(node): chain \(verify.valid ? "valid" : "BROKEN"), \(verify.length) events")
        }
        step("Done")
        say(keep ? "keys, configs, data and logs kept in \(directory)" : "stopping the nodes (run with --keep to keep their data and logs)")
    }

    /// Features under consent, an event contract minimizing at ingestion,
    /// then Anna's erasure and what its signed request still waits for.
    /// Calls go to eu-1, eu-2 and eu-3 in turn: any node serves any call.
    static func featuresAndErasure(_ federation: LocalFederation, anna pid: String, directory: String) async throws {
        let node = "eu-1"
        let admin = try federation.node(node, as: "admin")
        let ingest = try federation.node(node, as: "ingest")
        step("Features: written under consent, minimized at ingestion, withheld once consent goes")
        for name in ["last_category", "last_seen_day", "network"] {
            _ = try await refusal(of: {
                try await admin.defineFeature(FeatureDefinition(name: name, type: .string, purpose: "product_recs", ttlSeconds: 7_776_000))
            })
        }
        _ = try await refusal(of: {
            try await admin.defineContract("page_view", EventContract(fields: [
                "category": .init(type: "string", feature: "last_category"),
                "seen_at": .init(type: "timestamp", feature: "last_seen_day", transform: "bucket_day"),
                "ip": .init(type: "string", feature: "network", transform: "ip_prefix"),
                "email": .init(type: "string", transform: "drop", identity: true),
            ]))
        })
        let updated = try await ingest.sendEvent("page_view", pid: pid, fields: [
            "category": .string("running shoes"), "seen_at": .string(Timestamp.now.rfc3339), "ip": .string("203.0.113.77"),
            "email": .string("anna.schmidt@example.de"),
        ])
        say("event page_view for Anna: 202, features updated \(updated.joined(separator: ", "))")
        let served = try await federation.node("eu-2", as: "serve").features(of: pid, purpose: "product_recs")
        let features = served.features.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        say("Anna's product_recs features, read on eu-2: \(features.joined(separator: ", "))   (raw IP, time and e-mail never stored)")
        let unknown = try await refusal(of: {
            _ = try await ingest.sendEvent("page_view", pid: pid, fields: ["category": .string("hats"), "referrer": .string("https://x.example")])
        })
        let pii = try await refusal(of: { _ = try await ingest.sendEvent("page_view", pid: pid, fields: ["category": .string("call +49 151 2345 6789")]) })
        say("a field the contract does not allow: \(outcome(unknown, success: 202));  a phone number in category: "
            + "\(outcome(pii, success: 202))")
        _ = try await refusal(of: {
            _ = try await federation.node("eu-3", as: "ingest").appendConsent(
                .revoke(["product_recs"], source: "web-portal:v2", collectedAt: Timestamp.now.rfc3339), for: pid)
        })
        let withheld = try await federation.node("eu-2", as: "serve").features(of: pid, purpose: "product_recs")
        let names = withheld.withheld.map { "\($0.name) (\($0.reason))" }
        say("after Anna revokes product_recs on eu-3, read on eu-2: served \(withheld.features.count), withheld "
            + names.joined(separator: ", ") + "; the values were purged with the revoke")
        let refused = try await refusal(of: { try await ingest.writeFeatures(["last_category": "boots"], for: pid) })
        say("writing a product_recs feature now: \(outcome(refused, success: 200))")

        step("Erasure: Anna asks a node of us to forget her (an eu subject); one log entry erases her on every node of eu, the "
             + "request cascades to every region through the federation, each region acks once its nodes confirmed")
        let requested = try await requestErasure(of: pid, on: "us-2", federation)
        let erasureID = requested.erasureID
        say("\(erasureID) \(requested.status) on us-2: \(regionStates(requested))")
        let (erasure, seconds) = await completion(of: erasureID, readOn: "us-1", federation)
        guard let erasure, let sent = erasure.certificate else {
            throw CLIError.failed("erasure did not complete in 60 s: waiting for \(erasure?.waitingFor ?? [])")
        }
        say(String(format: "complete after %.1f s (read on us-1)", seconds))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let certificateData = try encoder.encode(sent.document)
        let certificate = try JSONDecoder().decode(DomicilePrivacy.ErasureCertificate.self, from: certificateData)
        let certificateFile = (directory as NSString).appendingPathComponent("erasure-certificate.json")
        try certificateData.write(to: URL(fileURLWithPath: certificateFile))
        say("\(certificate.request.erasureID) \(erasure.status), due \(erasure.dueAt ?? "?") "
            + "(\(certificate.request.jurisdiction)); acks:")
        for ack in certificate.acks {
            let counts = ack.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            say("  \(ack.node) (scope \(ack.scope.rawValue)) erased: \(counts)")
        }
        let problems = certificate.problems(trusted: try trustedKeys(of: certificate, directory: directory))
        say("certificate against the nodes' public keys: \(problems.isEmpty ? "valid and complete" : "INVALID: \(problems)")"
            + "; offline (with --keep): domicile erasure verify \(certificateFile) --trust KEYS (domicile keys export-public)")
        let lookup = try await refusal(of: { _ = try await federation.node("eu-1", as: "serve").lookup(.email("anna.schmidt@example.de")) })
        let history = try await federation.node("eu-2", as: "privacy_officer").consentHistory(of: pid)
        say("lookup of Anna on eu-1: \(outcome(lookup, success: 200));  her receipts on eu-2: \(history.receipts.count) "
            + "redacted to their hashes, chain \(history.chainValid ? "still valid" : "BROKEN")")
    }

    /// The signing keys of every node the certificate expects, read from their keyrings (what `keys export-public` prints).
    static func trustedKeys(of certificate: DomicilePrivacy.ErasureCertificate, directory: String) throws -> ErasureTrust {
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
    static func regionStates(_ erasure: ErasureStatus) -> String {
        erasure.regions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// The problem a call was refused with, or nil if it was answered; any other error is thrown.
    static func refusal(of call: () async throws -> Void) async throws -> DomicileProblem? {
        do {
            try await call()
            return nil
        } catch let problem as DomicileProblem {
            return problem
        }
    }

    /// `403 consent_required` for a refusal, else the status the call answers when it succeeds.
    static func outcome(_ refusal: DomicileProblem?, success status: Int) -> String {
        refusal.map { "\($0.status) \($0.code)" } ?? "\(status) "
    }

    /// Requests the erasure of `pid` on `node`, or fails the demo saying why.
    static func requestErasure(of pid: String, on node: String, _ federation: LocalFederation) async throws -> ErasureStatus {
        do {
            return try await federation.node(node, as: "privacy_officer").requestErasure(pid: pid)
        } catch let problem as DomicileProblem {
            throw CLIError.failed("erasure refused: \(problem.status) \(problem.code)")
        }
    }

    /// Polls an erasure until it completes (60 s at most): its last state, and the seconds it took.
    static func completion(of id: String, readOn node: String, _ federation: LocalFederation) async -> (ErasureStatus?, Double) {
        let started = Date()
        var last: ErasureStatus?
        _ = await waitUntil(seconds: 60) {
            guard let state = try? await federation.node(node, as: "privacy_officer").erasure(id) else { return false }
            last = state
            return state.isComplete
        }
        return (last, Date().timeIntervalSince(started))
    }

    /// An erasure started while a region is stopped: pending, naming it; complete once it is back.
    static func erasureWithARegionDown(_ federation: LocalFederation, clara pid: String) async throws {
        step("Erasure with a region cut off: br stopped, Clara (a br subject) asks eu-1 to forget her")
        for node in ["br-1", "br-2", "br-3"] { federation.kill(node) }
        let requested = try await requestErasure(of: pid, on: "eu-1", federation)
        let erasureID = requested.erasureID
        var pending = requested
        _ = await waitUntil(seconds: 30) {
            guard let state = try? await federation.node("eu-2", as: "privacy_officer").erasure(erasureID) else { return false }
            pending = state
            return state.regions.filter({ $0.value == "pending" }).keys.sorted() == ["br"]
        }
        let br = pending.regionStatus?["br"]
        say("\(erasureID) \(pending.status) on eu-2: \(regionStates(pending)); waiting for "
            + "\((pending.waitingFor ?? []).joined(separator: ", ")) (br: \(br?.code ?? "?"), "
            + "last contact \(br?.lastContact ?? "never"))")
        for node in ["br-1", "br-2", "br-3"] { try federation.start(node) }
        let (done, seconds) = await completion(of: erasureID, readOn: "eu-3", federation)
        guard let done, done.isComplete else { throw CLIError.failed("the erasure did not complete once br was back") }
        let acks = (done.certificate?.acks ?? []).map(\.region)
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
