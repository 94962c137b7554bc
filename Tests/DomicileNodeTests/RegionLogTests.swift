@testable import DomicileNode
import DomicileConsensus
import DomicileCrypto
import DomicileModel
import DomicileNet
import DomicileStorage
import DomicileTestSupport
import Foundation
import XCTest

/// A region of three `domicile serve` processes sharing one region log:
/// any node serves any call, what was acknowledged survives the loss of a
/// node (SIGKILL), a node without a majority answers `no_quorum`, and
/// crypto-shredding reaches a copy of a follower's database and log.
final class RegionLogTests: XCTestCase {
    var federation: FederationFixture!
    var nodes: [String: NodeProcess] = [:]
    let names = ["eu-1", "eu-2", "eu-3"]

    override func setUp() async throws {
        // A short log: compaction runs all the time, and a node that joins late gets a snapshot.
        federation = try FederationFixture(regions: ["eu"], nodesPerRegion: 3, regionLog: true) { _, config in
            var log = config["region_log"] as? [String: Any] ?? [:]
            log["compact_entries"] = 20
            config["region_log"] = log
        }
        for name in names { nodes[name] = try federation.start(name) }
        try await waitUntilReady(names)
    }

    override func tearDown() {
        for node in nodes.values { node.kill() }
        nodes = [:]
        super.tearDown()
    }

    func token(_ role: String) -> String { federation.token(role) }

    func call(_ node: String, _ method: String, _ path: String, role: String, json: String? = nil) async throws -> NodeProcess.Response {
        try await nodes[node]!.call(method, path, token: token(role), json: json)
    }

    /// Waits (bounded) until every node named answers `/readyz` 200.
    func waitUntilReady(_ names: [String], file: StaticString = #filePath, line: UInt = #line) async throws {
        for name in names {
            var ready = false
            for _ in 0..<200 where !ready {
                ready = (try? await nodes[name]!.call("GET", "/readyz", token: nil))?.status == 200
                if !ready { try await Task.sleep(nanoseconds: 50_000_000) }
            }
            XCTAssertTrue(ready, "\(name) became ready", file: file, line: line)
        }
    }

    func regionLog(_ node: String) async throws -> [String: Any] {
        let response = try await call(node, "GET", "/v1/cluster", role: "admin")
        XCTAssertEqual(response.status, 200, response.text)
        return try XCTUnwrap(response.json["region_log"] as? [String: Any], response.text)
    }

    func leader() async throws -> String {
        for _ in 0..<200 {
            for name in nodes.keys.sorted() {
                if let log = try? await regionLog(name), log["role"] as? String == "leader" { return name }
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTFail("no node of the region became its leader")
        throw CancellationError()
    }

    /// Waits until every running node has applied the leader's commit index.
    func waitUntilConverged(file: StaticString = #filePath, line: UInt = #line) async throws {
        let commit = try await regionLog(try await leader())["commit_index"] as? Int ?? 0
        for name in nodes.keys.sorted() {
            var applied = 0
            for _ in 0..<200 where applied < commit {
                applied = try await regionLog(name)["applied_index"] as? Int ?? 0
                if applied < commit { try await Task.sleep(nanoseconds: 25_000_000) }
            }
            XCTAssertGreaterThanOrEqual(applied, commit, "\(name) applied the log", file: file, line: line)
        }
    }

    func register(_ email: String, on node: String) async throws -> String {
        let response = try await call(node, "POST", "/v1/subjects", role: "ingest",
                                      json: #"{"identifier":{"kind":"email","value":"\#(email)"},"country":"DE"}"#)
        XCTAssertTrue([200, 201].contains(response.status), response.text)
        return try XCTUnwrap(response.json["pid"] as? String, response.text)
    }

    func receipt(_ pid: String, _ action: String, on node: String) async throws -> NodeProcess.Response {
        try await call(node, "POST", "/v1/subjects/\(pid)/consents", role: "ingest",
                       json: #"{"action":"\#(action)","purposes":["product_recs"],"source":"test:e2e","collected_at":"2026-01-01T00:00:00Z"}"#)
    }

    func features(_ pid: String, on node: String) async throws -> NodeProcess.Response {
        try await call(node, "GET", "/v1/subjects/\(pid)/features?purpose=product_recs", role: "serve")
    }

    // MARK: One store

    func test_aSubjectsLife_stepByStepOnDifferentNodes_isOneStore() async throws {
        let defined = try await call("eu-3", "PUT", "/v1/feature-definitions/last_category", role: "admin", json: """
            {"type":"string","purpose":"product_recs","ttl_seconds":3600,"classification":"behavioral"}
            """)
        XCTAssertTrue([200, 201].contains(defined.status), defined.text)
        let pid = try await register("life@example.com", on: "eu-1")
        let granted = try await receipt(pid, "grant", on: "eu-2")
        XCTAssertEqual(granted.status, 201, granted.text)
        let written = try await call("eu-3", "PUT", "/v1/subjects/\(pid)/features", role: "ingest",
                                     json: #"{"values":{"last_category":"shoes"}}"#)
        XCTAssertEqual(written.status, 200, written.text)
        for node in names {
            let read = try await features(pid, on: node)
            XCTAssertEqual(read.status, 200, read.text)
            XCTAssertEqual((read.json["features"] as? [String: Any])?["last_category"] as? String, "shoes", "\(node): \(read.text)")
        }

        // A revocation acknowledged by one node holds on every node at once.
        let revoked = try await receipt(pid, "revoke", on: "eu-1")
        XCTAssertEqual(revoked.status, 201, revoked.text)
        for node in names {
            let read = try await features(pid, on: node)
            XCTAssertEqual(read.status, 200, read.text)
            XCTAssertNil((read.json["features"] as? [String: Any])?["last_category"], "\(node) served a revoked value: \(read.text)")
        }

        let erased = try await call("eu-2", "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(pid)"}"#)
        XCTAssertEqual(erased.status, 202, erased.text)
        XCTAssertEqual(erased.json["status"] as? String, "complete", erased.text)
        for node in names {
            let read = try await call(node, "GET", "/v1/subjects/\(pid)", role: "serve")
            XCTAssertEqual(read.status, 404, "\(node): \(read.text)")
        }

        // Every node holds the same chain and audit log.
        try await waitUntilConverged()
        var heads: Set<String> = []
        for node in names {
            let verified = try await call(node, "GET", "/v1/audit/verify", role: "privacy_officer")
            XCTAssertEqual(verified.json["valid"] as? Bool, true, verified.text)
            heads.insert(verified.json["head"] as? String ?? "")
        }
        XCTAssertEqual(heads.count, 1, "one audit chain for the region: \(heads)")
        let databases = try names.map { try Database(path: federation.dataDirectory($0) + "/node.sqlite") }
        for table in ["subjects", "consent_receipts", "consent_active", "features", "audit_log", "erasure_requests"] {
            let counts = try databases.map { try $0.fetchOne("SELECT count(*) FROM \(table)") { $0.int64(0) } }
            XCTAssertEqual(Set(counts).count, 1, "\(table) rows differ between nodes: \(counts)")
        }
    }

    func test_theClusterView_showsTheRegionLog() async throws {
        let leader = try await leader()
        let view = try await regionLog(leader)
        XCTAssertEqual(view["role"] as? String, "leader")
        XCTAssertEqual(view["leader"] as? String, leader)
        let voters = try XCTUnwrap(view["voters"] as? [[String: Any]])
        XCTAssertEqual(Set(voters.compactMap { $0["name"] as? String }), Set(names))
        XCTAssertTrue(voters.allSatisfy { $0["match_index"] is Int }, "the leader reports each voter's match index: \(voters)")
        let follower = try XCTUnwrap(names.first { $0 != leader })
        let followerView = try await regionLog(follower)
        XCTAssertEqual(followerView["role"] as? String, "follower")
        XCTAssertEqual(followerView["leader"] as? String, leader)
        let metrics = try await nodes[leader]!.call("GET", "/metrics", token: nil)
        XCTAssertTrue(metrics.text.contains("domicile_region_log_leader 1"), metrics.text)
        XCTAssertTrue(metrics.text.contains("domicile_region_log_proposal_seconds_count"), metrics.text)
    }

    // MARK: Failures

    func test_killingTheLeader_losesNothingAcknowledged_andTheRegionKeepsServing() async throws {
        var acknowledged: [String] = []
        for index in 0..<10 {
            acknowledged.append(try await register("before\(index)@example.com", on: names[index % 3]))
        }
        let killed = try await leader()
        nodes[killed]!.kill()
        nodes[killed] = nil
        let survivor = try XCTUnwrap(names.first { $0 != killed })
        var written = 0
        for attempt in 0..<400 where written < 5 {
            let response = try await call(survivor, "POST", "/v1/subjects", role: "ingest",
                                          json: #"{"identifier":{"kind":"email","value":"after\#(attempt)@example.com"},"country":"DE"}"#)
            if response.status == 201, let pid = response.json["pid"] as? String {
                acknowledged.append(pid)
                written += 1
            } else {
                XCTAssertEqual(response.status, 503, response.text)
                XCTAssertEqual(response.json["code"] as? String, "no_quorum", response.text)
                XCTAssertNotNil(response.headers["retry-after"])
                try await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        XCTAssertEqual(written, 5, "the two remaining nodes elected a leader and took writes")

        nodes[killed] = try federation.start(killed)
        try await waitUntilReady([killed])
        try await waitUntilConverged()
        for node in names {
            for pid in acknowledged {
                let read = try await call(node, "GET", "/v1/subjects/\(pid)", role: "serve")
                XCTAssertEqual(read.status, 200, "\(node) lost \(pid): \(read.text)")
            }
        }
    }

    func test_aNodeWithoutAMajority_refusesWritesAndReads_withNoQuorum() async throws {
        let pid = try await register("alone@example.com", on: "eu-1")
        let granted = try await receipt(pid, "grant", on: "eu-1")
        XCTAssertEqual(granted.status, 201, granted.text)
        nodes["eu-2"]!.kill()
        nodes["eu-3"]!.kill()
        nodes["eu-2"] = nil
        nodes["eu-3"] = nil

        // Within an election timeout the lone node stops leading (or following).
        var ready = 200
        for _ in 0..<100 where ready == 200 {
            ready = try await nodes["eu-1"]!.call("GET", "/readyz", token: nil).status
            if ready == 200 { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        let readiness = try await nodes["eu-1"]!.call("GET", "/readyz", token: nil)
        XCTAssertEqual(readiness.status, 503, readiness.text)
        XCTAssertEqual(readiness.json["reason"] as? String, "no_quorum", readiness.text)

        for response in [try await receipt(pid, "revoke", on: "eu-1"), try await features(pid, on: "eu-1"),
                         try await call("eu-1", "GET", "/v1/subjects/\(pid)/consent", role: "serve")] {
            XCTAssertEqual(response.status, 503, response.text)
            XCTAssertEqual(response.json["code"] as? String, "no_quorum", response.text)
            XCTAssertNotNil(response.headers["retry-after"], response.text)
        }
    }

    /// An erasure leaves no node's WAL holding the erased subject's rows:
    /// the followers truncate theirs when they apply it, as the leader does.
    func test_anErasure_leavesNothingOfTheSubjectInAnyNodesWAL() async throws {
        let pid = try await register("wal@example.com", on: "eu-1")
        try await waitUntilConverged()
        let link = try XCTUnwrap(try Database(path: federation.dataDirectory("eu-2") + "/node.sqlite")
            .fetchOne("SELECT link FROM subjects WHERE pid = ?", [pid]) { $0.blob(0) })
        let erased = try await call(try await leader(), "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(pid)"}"#)
        XCTAssertEqual(erased.status, 202, erased.text)
        try await waitUntilConverged()
        for node in names {
            var holds = true
            for _ in 0..<200 where holds {
                let wal = (try? FileIO.read(federation.dataDirectory(node) + "/node.sqlite-wal", byteCountMax: 1 << 30)) ?? []
                holds = Self.contains(wal, link)
                if holds { try await Task.sleep(nanoseconds: 25_000_000) }
            }
            XCTAssertFalse(holds, "\(node)'s WAL still holds the erased subject's row")
        }
    }

    /// The region's one erasure ack is signed only once every node of the
    /// region has confirmed that it applied the erasure: with a follower
    /// paused, the erasure commits (a majority has it) but stays pending,
    /// naming the region; once the follower is back, the leader asks again
    /// and the request completes with one `region` ack, and its certificate
    /// verifies offline with the region's keys.
    func test_anErasure_isAckedForTheRegionOnlyOnceEveryNodeConfirmedIt() async throws {
        let pid = try await register("confirm@example.com", on: "eu-1")
        try await waitUntilConverged()
        let leader = try await leader()
        let paused = try XCTUnwrap(names.first { $0 != leader })
        nodes[paused]!.process.signal(SIGSTOP)
        let erased = try await call(leader, "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(pid)"}"#)
        nodes[paused]!.process.signal(SIGCONT)
        XCTAssertEqual(erased.status, 202, erased.text)
        XCTAssertEqual(erased.json["status"] as? String, "pending", "a paused node has not confirmed: \(erased.text)")
        XCTAssertEqual(erased.json["regions"] as? [String: String], ["eu": "pending"], erased.text)
        XCTAssertEqual(Set((erased.json["expected_nodes"] as? [String: [String]])?["eu"] ?? []), Set(names), erased.text)
        let id = try XCTUnwrap(erased.json["erasure_id"] as? String)

        var found = try await call(paused, "GET", "/v1/erasures/\(id)", role: "privacy_officer")
        for _ in 0..<300 where found.json["status"] as? String != "complete" {
            try await Task.sleep(nanoseconds: 100_000_000)
            found = try await call(paused, "GET", "/v1/erasures/\(id)", role: "privacy_officer")
        }
        XCTAssertEqual(found.json["status"] as? String, "complete", found.text)
        let certificate = try XCTUnwrap(found.json["certificate"] as? [String: Any], found.text)
        let acks = try XCTUnwrap(certificate["acks"] as? [[String: Any]])
        XCTAssertEqual(acks.count, 1, "one ack for the region: \(acks)")
        XCTAssertEqual(acks.first?["scope"] as? String, "region")
        XCTAssertEqual((acks.first?["counts"] as? [String: Any])?["subjects"] as? Int, 1)

        let certificateFile = federation.directory.file("certificate.json")
        try JSONSerialization.data(withJSONObject: certificate).write(to: URL(fileURLWithPath: certificateFile))
        let verified = try Binary.run(["erasure", "verify", certificateFile] + (try federation.trustArguments(for: names)))
        XCTAssertEqual(verified.status, 0, verified.stderr + verified.stdout)
    }

    /// What a crash between a snapshot's restore into node.sqlite and
    /// raft.sqlite recording it leaves: a database ahead of its node's log.
    /// The node rebases its log onto its applied state when it starts, and
    /// applies what the leader commits next (without the rebase, it would
    /// refuse every snapshot at or below its applied index, and its log
    /// would stay behind the leader's compaction). Enough entries that the
    /// leader compacts past the follower's log while it is down.
    func test_aNodeWhoseDatabaseIsAheadOfItsLog_rebasesTheLog_andAppliesWhatFollows() async throws {
        let leader = try await leader()
        let follower = try XCTUnwrap(names.first { $0 != leader })
        nodes[follower]!.kill()
        for index in 0..<80 { _ = try await register("ahead-\(index)@example.com", on: leader) }
        let database = federation.dataDirectory(follower) + "/node.sqlite"
        for suffix in ["", "-wal", "-shm"] { unlink(database + suffix) }
        try Database(path: federation.dataDirectory(leader) + "/node.sqlite").backup(to: database)
        nodes[follower] = try federation.start(follower)
        try await waitUntilReady([follower])

        let pid = try await register("after-the-rebase@example.com", on: leader)
        try await waitUntilConverged()
        let held = try Database(path: database).fetchOne("SELECT count(*) FROM subjects WHERE pid = ?", [pid]) { $0.int64(0) }
        XCTAssertEqual(held, 1, "\(follower) applied the entry that followed its rebase")
        XCTAssertTrue(nodes[follower]!.logLines.contains { $0.contains("region log rebased onto the applied state") },
                      "\(follower) rebased its log")
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    // MARK: Keys

    /// A copy of a follower's database and region log taken before an
    /// erasure holds the erased subject's key wrapped under a bucket-key
    /// version that no node's keyring holds after it.
    func test_aCopyOfAFollowersDataTakenBeforeAnErasure_staysUnreadableAfterIt() async throws {
        let erased = try await register("shred@example.com", on: "eu-1")
        let kept = try await register("keep@example.com", on: "eu-2")
        let leader = try await leader()
        let follower = try XCTUnwrap(names.first { $0 != leader })
        try await waitUntilConverged()

        XCTAssertEqual(nodes[follower]!.stop(), 0)
        let copy = federation.directory.file("\(follower)/copy-before-erasure")
        try FileManager.default.copyItem(atPath: federation.dataDirectory(follower), toPath: copy)
        nodes[follower] = try federation.start(follower)
        try await waitUntilReady([follower])

        let erasure = try await call(leader, "POST", "/v1/erasures", role: "privacy_officer", json: #"{"pid":"\#(erased)"}"#)
        XCTAssertEqual(erasure.status, 202, erasure.text)
        try await waitUntilConverged()
        // The follower destroys the retired version after its read grace.
        try await Task.sleep(nanoseconds: 2_500_000_000)
        for node in names { XCTAssertEqual(nodes[node]!.stop(), 0) }
        nodes = [:]

        let master = try MasterKey(base64: String(decoding: try FileIO.read(federation.directory.file("master.key"), byteCountMax: 1_024),
                                                  as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        for node in names {
            let keyring = try KeyringFile.load(path: federation.directory.file("\(node)/\(node).keyring"), master: master)
            let old = try Database(path: copy + "/node.sqlite")
            let oldWrapped = try XCTUnwrap(try old.fetchOne("SELECT wrapped_key FROM subjects WHERE pid = ?", [erased]) { $0.blob(0) })
            let wrapping = try XCTUnwrap(SubjectKeyring.wrapping(of: oldWrapped))
            XCTAssertNil(keyring.buckets.key(wrapping.bucket, version: wrapping.version),
                         "\(node) still holds the bucket key that wrapped the erased subject in the old copy")
            let keptWrapped = try XCTUnwrap(try Database(path: federation.dataDirectory(node) + "/node.sqlite")
                .fetchOne("SELECT wrapped_key FROM subjects WHERE pid = ?", [kept]) { $0.blob(0) })
            let keptWrapping = try XCTUnwrap(SubjectKeyring.wrapping(of: keptWrapped))
            XCTAssertNotNil(keyring.buckets.key(keptWrapping.bucket, version: keptWrapping.version), "\(node) can read the kept subject")
        }
        // The old log holds the same rows (each entry is a changeset of them): every subject key in it is wrapped
        // under a version the keyrings no longer hold.
        let log = try RaftStorage(path: copy + "/" + RaftStorage.fileName, now: 0)
        let keyring = try KeyringFile.load(path: federation.directory.file("\(follower)/\(follower).keyring"), master: master)
        var seen = 0
        for stored in try log.entries(from: log.firstIndex, upTo: log.lastIndex + 1, byteCountMax: .max) {
            guard case .command(let bytes) = try RaftCodec.decodeEntry(stored.payload).payload, !bytes.isEmpty else { continue }
            let changeset = try RegionCommand.decode(bytes)
            let wrappedColumn = try Database(path: copy + "/node.sqlite")
                .fetchOne("SELECT cid FROM pragma_table_info('subjects') WHERE name = 'wrapped_key'") { $0.int(0) }!
            for row in try changeset.rows(in: "subjects", columns: [0, wrappedColumn]) {
                guard case .text(erased)? = row[0], case .blob(let wrapped)? = row[1] else { continue }
                let wrapping = try XCTUnwrap(SubjectKeyring.wrapping(of: wrapped))
                XCTAssertNil(keyring.buckets.key(wrapping.bucket, version: wrapping.version))
                seen += 1
            }
        }
        XCTAssertGreaterThan(seen, 0, "the old log held the erased subject's row")
    }

    /// Nodes are known by name and key: one restarted on another address
    /// (the roster updated) is reached there and takes part again.
    func test_aNodeRestartedOnANewAddress_rejoins() async throws {
        let leader = try await leader()
        let moved = try XCTUnwrap(names.first { $0 != leader })
        XCTAssertEqual(nodes[moved]!.stop(), 0)
        let port = try FreePorts.consecutive(1)
        let configPath = federation.configPath(moved)
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
        var log = try XCTUnwrap(config["region_log"] as? [String: Any])
        log["address"] = "127.0.0.1:\(port)"
        config["region_log"] = log
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let rosterPath = federation.directory.file("eu.roster.json")
        var roster = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: rosterPath))) as? [String: Any])
        roster["nodes"] = (roster["nodes"] as? [[String: Any]] ?? []).map { node in
            var node = node
            if node["name"] as? String == moved { node["channel"] = "127.0.0.1:\(port)" }
            return node
        }
        try JSONSerialization.data(withJSONObject: roster).write(to: URL(fileURLWithPath: rosterPath))

        let pid = try await register("while-away@example.com", on: leader)
        nodes[moved] = try federation.start(moved)
        try await waitUntilReady([moved])
        try await waitUntilConverged()
        let own = try Database(path: federation.dataDirectory(moved) + "/node.sqlite")
        XCTAssertEqual(try own.fetchOne("SELECT count(*) FROM subjects WHERE pid = ?", [pid]) { $0.int64(0) }, 1,
                       "the moved node received what was written while it was away")
    }

    /// A node whose region log is gone but whose database applied it must
    /// not bootstrap as a new voter (it could vote twice in a term).
    func test_aNodeThatLostItsLog_refusesToStartAsANewVoter() async throws {
        _ = try await register("before-the-loss@example.com", on: "eu-1")
        try await waitUntilConverged()
        let leader = try await leader()
        let victim = try XCTUnwrap(names.first { $0 != leader })
        XCTAssertEqual(nodes[victim]!.stop(), 0)
        nodes[victim] = nil
        for suffix in ["", "-wal", "-shm"] { unlink(federation.dataDirectory(victim) + "/" + RaftStorage.fileName + suffix) }
        XCTAssertThrowsError(try federation.start(victim)) { error in
            XCTAssertTrue("\(error)".contains("raft.sqlite is empty"), "\(error)")
        }
    }

    // MARK: Membership

    func test_aNodeAddedToARunningRegion_catchesUpBySnapshot_andARemovedNodeStopsReceivingEntries() async throws {
        var pids: [String] = []
        for index in 0..<60 { pids.append(try await register("early\(index)@example.com", on: names[index % 3])) }
        let ports = try FreePorts.consecutive(2)
        let laidOut = try Binary.run(["cluster", "add-node", "--dir", federation.directory.path, "--region", "eu", "--name", "eu-4",
                                      "--http-port", "\(ports)", "--channel-port", "\(ports + 1)"])
        XCTAssertEqual(laidOut.status, 0, laidOut.stderr)
        nodes["eu-4"] = try federation.start("eu-4")
        let joined = try Binary.run(["cluster", "join", "eu-4", "--via", nodes["eu-2"]!.address.description,
                                     "--token-file", federation.directory.file("tokens.json"),
                                     "--ca-file", federation.caFile!])
        XCTAssertEqual(joined.status, 0, joined.stderr)
        XCTAssertTrue(joined.stdout.contains("eu-4 joined; voters: eu-1, eu-2, eu-3, eu-4"), joined.stdout)
        XCTAssertTrue(nodes["eu-4"]!.logLines.contains { $0.contains("region log snapshot installed") },
                      "the log was compacted long before eu-4 joined: it must have caught up by snapshot")

        // It serves: reads through it see everything, and its own database holds it all.
        let late = try await register("late@example.com", on: "eu-4")
        pids.append(late)
        try await waitUntilConverged()
        for pid in pids {
            let read = try await call("eu-4", "GET", "/v1/subjects/\(pid)", role: "serve")
            XCTAssertEqual(read.status, 200, read.text)
        }
        let own = try Database(path: federation.dataDirectory("eu-4") + "/node.sqlite")
        XCTAssertEqual(try own.fetchOne("SELECT count(*) FROM subjects") { $0.int64(0) }, Int64(pids.count))

        let removed = try Binary.run(["cluster", "remove-node", "eu-4", "--via", nodes["eu-1"]!.address.description,
                                      "--token-file", federation.directory.file("tokens.json"),
                                      "--ca-file", federation.caFile!])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        let appliedWhenRemoved = try await regionLog("eu-4")["applied_index"] as? Int ?? 0
        for index in 0..<5 { _ = try await register("after-removal\(index)@example.com", on: names[index % 3]) }
        let leaderCommit = try await regionLog(try await leader())["commit_index"] as? Int ?? 0
        try await Task.sleep(nanoseconds: 500_000_000)
        let appliedLater = try await regionLog("eu-4")["applied_index"] as? Int ?? 0
        XCTAssertEqual(appliedLater, appliedWhenRemoved, "a removed node receives no more entries")
        XCTAssertLessThan(appliedLater, leaderCommit)
        let events = try await call("eu-1", "GET", "/v1/audit?after=0&limit=1000", role: "privacy_officer")
        let actions = (events.json["events"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
        XCTAssertTrue(actions.contains("region_log.member_add") && actions.contains("region_log.member_remove"), "\(actions.suffix(10))")
    }

    func test_recover_aRegionThatLostItsMajority_isDeliberate_andAudited() async throws {
        let pid = try await register("survivor@example.com", on: "eu-1")
        try await waitUntilConverged()
        for name in ["eu-2", "eu-3"] { nodes[name]!.kill() }
        XCTAssertEqual(nodes["eu-1"]!.stop(), 0)
        nodes = [:]

        let config = federation.configPath("eu-1")
        let unconfirmed = try Binary.run(["cluster", "recover", "--config", config])
        XCTAssertEqual(unconfirmed.status, 2, "refused without --confirm: \(unconfirmed.stderr)")
        let recovered = try Binary.run(["cluster", "recover", "--config", config, "--confirm"])
        XCTAssertEqual(recovered.status, 0, recovered.stderr)

        nodes["eu-1"] = try federation.start("eu-1")
        try await waitUntilReady(["eu-1"])
        let read = try await call("eu-1", "GET", "/v1/subjects/\(pid)", role: "serve")
        XCTAssertEqual(read.status, 200, "what was committed before is kept: \(read.text)")
        _ = try await register("after-recovery@example.com", on: "eu-1")
        var actions: [String] = []
        for _ in 0..<100 where !actions.contains("region_log.recover") {
            let events = try await call("eu-1", "GET", "/v1/audit?after=0&limit=1000", role: "privacy_officer")
            actions = (events.json["events"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTAssertTrue(actions.contains("region_log.recover"), "the recovery is in the region's audit log")
        let view = try await regionLog("eu-1")
        XCTAssertEqual((view["voters"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["eu-1"])
    }
}
