import DomicileConsensus
import DomicileModel
import DomicileStorage
import Foundation

extension RegionLog {
    struct Misconfigured: Error, CustomStringConvertible {
        let description: String
    }

    /// The node's region log, after checking that the roster lists this
    /// node of this region with the signing key of its keyring, from where
    /// node.sqlite has applied it.
    static func open(configuration: NodeConfiguration.RegionLog, roster: RegionRoster, services: NodeServices,
                     random: any RandomSource) throws -> RegionLog {
        let node = services.configuration.node
        guard roster.region == services.region else {
            throw Misconfigured(description: "the roster lists region \(roster.region), not this node's \(services.region)")
        }
        guard let listed = roster.node(node) else { throw Misconfigured(description: "the roster does not list \(node)") }
        guard listed.publicKey.rawRepresentation == services.keys.signing.publicKey.rawRepresentation else {
            throw Misconfigured(description: "the roster's key for \(node) is not the signing key of its keyring")
        }
        let applied = try services.store.read { database in
            try database.fetchOne("SELECT applied_index FROM region_log_applied WHERE id = 1") { UInt64(max(0, $0.int64(0))) }
        } ?? 0
        return try RegionLog(name: node, settings: configuration, roster: roster, dataDirectory: services.configuration.dataDirectory,
                             appliedIndex: applied, store: services.store, random: random,
                             now: services.clock.now().milliseconds / 1_000, logger: services.logger,
                             follower: try RegionFollower(services: services))
    }
}

/// What a node does around applying another node's entry, beyond writing
/// its rows: before, installs the bucket-key versions the entry rotated to
/// or wraps subject keys under (each node ratchets its own copy of the key;
/// only the version number travels, in `bucket_versions`);
/// inside the entry's transaction, brings what it keeps in memory to what it
/// applied — the vector indexes and eligibility deadlines of every subject
/// the entry touched (its subject row, active consents or vectors), or every
/// collection when a definition changed; after, when an erasure re-wrapped
/// subject keys, destroys bucket versions no row uses any more.
struct RegionFollower: Sendable {
    /// Positions of the columns read from changesets (the schema is the same
    /// on every node of the region).
    let subjectsWrappedKey: Int
    let vectorsPID: Int
    unowned let services: NodeServices

    init(services: NodeServices) throws {
        func position(_ column: String, of table: String) throws -> Int {
            let found = try services.store.read { database in
                try database.fetchOne("SELECT cid FROM pragma_table_info(?) WHERE name = ?", [table, column]) { $0.int(0) }
            }
            guard let found else { throw RegionLog.Misconfigured(description: "the schema has no \(table).\(column)") }
            return found
        }
        subjectsWrappedKey = try position("wrapped_key", of: "subjects")
        vectorsPID = try position("pid", of: "vectors")
        self.services = services
    }

    func prepare(_ changeset: Changeset) throws {
        var wrappings = try changeset.rows(in: "subjects", columns: [subjectsWrappedKey]).compactMap { row -> SubjectKeyring.Wrapping? in
            guard case .blob(let wrapped)? = row[0] else { return nil }
            return SubjectKeyring.wrapping(of: wrapped)
        }
        // A rotation whose bucket keeps no subject (the erased one was alone in it) shows only here.
        for row in try changeset.rows(in: "bucket_versions", columns: [0, 1]) {
            guard case .integer(let bucket)? = row[0], case .integer(let version)? = row[1],
                  let bucket = UInt16(exactly: bucket), let version = UInt32(exactly: version) else {
                throw StorageError.corrupt(table: "bucket_versions", column: "version")
            }
            wrappings.append(SubjectKeyring.Wrapping(bucket: bucket, version: version))
        }
        if !wrappings.isEmpty { try services.keys.subjects.catchUp(to: wrappings) }
    }

    func applied(_ changeset: Changeset, in database: Database) throws {
        if !(try changeset.textValues(ofColumn: 0, in: "collections")).isEmpty {
            try services.vectors.load(services: services, from: database)
        } else {
            var pids = Set(try changeset.textValues(ofColumn: 0, in: "subjects"))
            pids.formUnion(try changeset.textValues(ofColumn: 0, in: "consent_active"))
            pids.formUnion(try changeset.textValues(ofColumn: vectorsPID, in: "vectors"))
            for text in pids.sorted() {
                guard let pid = try? PID(parsing: text) else { continue }
                try services.vectors.resynchronize(pid, services: services, in: database)
            }
        }
    }

    func finished() {
        guard !services.keys.subjects.buckets.retired.isEmpty else { return }
        let (store, subjects, logger) = (services.store, services.keys.subjects, services.logger)
        Task {
            do { try await subjects.destroyRetired(store) } catch {
                logger.error("retired bucket keys not destroyed", ["error": .string("\(type(of: error))")])
            }
        }
    }
}

extension RegionFollower {
    /// After a snapshot replaced the database (on the writer, in its
    /// connection): the keys ratchet to what its rows and rotations name,
    /// and every vector index is rebuilt from it.
    func installed(in database: Database) throws {
        try services.keys.subjects.catchUp(to: try SubjectKeyring.wrappings(in: database))
        try services.vectors.load(services: services, from: database)
    }
}

extension RegionLog {
    /// `domicile cluster recover` leaves this file in the data directory;
    /// the recovered node records the recovery in the region's audit log
    /// once it leads, then removes the file.
    static let recoveryMarker = RegionRecovery.markerName

    func recordRecovery(services: NodeServices) {
        let marker = (dataDirectory as NSString).appendingPathComponent(Self.recoveryMarker)
        guard let bytes = try? FileIO.read(marker, byteCountMax: 64 * 1_024) else { return }
        let detail = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        Task {
            while !isServingLeader {
                guard status.role != .follower || status.leader == nil else { return }
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
            do {
                try await services.audit(AuditEvent(at: services.clock.now(), principal: "operator", action: "region_log.recover",
                                                    pid: nil, purpose: nil, outcome: "ok", requestID: nil, detail: detail))
                unlink(marker)
                logger.warning("region log recovered", ["detail": .string(detail)])
            } catch {
                logger.error("region log recovery not audited yet", ["error": .string("\(type(of: error))")])
            }
        }
    }
}

/// `domicile cluster recover`: rewrites a stopped node's region log so that
/// `voters` alone form the region, and leaves the marker the node audits.
public enum RegionRecovery {
    static let markerName = "region-log-recovered.json"

    /// Appends a membership entry of `voters` after the last entry, in a
    /// term above any seen, with no vote cast in it; everything before it is
    /// kept (and will be committed by the new majority). Returns its place.
    public static func recover(_ configuration: NodeConfiguration, voters: Set<NodeName>, now: Int64) throws -> (index: UInt64, term: UInt64) {
        let storage = try RaftStorage(path: (configuration.dataDirectory as NSString).appendingPathComponent(RaftStorage.fileName), now: now)
        let term = storage.hardState.term + 1
        let entry = LogEntry(index: storage.lastIndex + 1, term: term, payload: .membership(try Membership(voters: voters)))
        try storage.persist(hardState: RaftHardState(term: term, vote: nil, commit: storage.hardState.commit),
                            entries: [RaftStoredEntry(index: entry.index, term: term, payload: RaftCodec.encode(entry))])
        let record = #"{"voters":[\#(voters.sorted().map { "\"\($0)\"" }.joined(separator: ","))],"index":\#(entry.index),"term":\#(term)}"#
        try FileIO.writeAtomically(Array(record.utf8) + [0x0A],
                                   to: (configuration.dataDirectory as NSString).appendingPathComponent(markerName), mode: 0o600, replacing: true)
        return (entry.index, term)
    }
}
