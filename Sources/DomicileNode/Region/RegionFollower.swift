import DomicileModel
import DomicileStorage

/// What a node does around applying another node's entry, beyond writing
/// its rows: before, installs the bucket-key versions the entry rotated to
/// or wraps subject keys under (each node ratchets its own copy of the key;
/// only the version number travels, in `bucket_versions`);
/// inside the entry's transaction, brings what it keeps in memory to what it
/// applied — the vector indexes and eligibility deadlines of every subject
/// the entry touched (its subject row, active consents, vectors or noised
/// exports) and the replicas of federation entries it took, or every
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
            pids.formUnion(try changeset.textValues(ofColumn: 1, in: "embedding_exports"))
            for text in pids.sorted() {
                guard let pid = try? PID(parsing: text) else { continue }
                try services.vectors.resynchronize(pid, services: services, in: database)
            }
            // Other regions' noised copies, and erasures of them, as the leader applied them.
            let positions = try changeset.rows(in: "federation_entries", columns: [0, 1]).compactMap { row -> (String, Int64)? in
                guard case .text(let origin)? = row[0], case .integer(let seq)? = row[1] else { return nil }
                return (origin, seq)
            }
            if !positions.isEmpty {
                let entries = try FederationRecords.entries(at: positions, keys: services.keys, in: database)
                services.vectors.applyFederated(entries, here: services.region, now: services.clock.now())
            }
        }
    }

    /// After an entry: destroys bucket versions a rotation retired, and
    /// truncates the WAL after an erasure.
    func finished(_ changeset: Changeset) throws {
        let rotated = !(try changeset.rows(in: "bucket_versions", columns: [0])).isEmpty
        let rewrapped = !(try changeset.rows(in: "subjects", columns: [0])).isEmpty
        let erased = !(try changeset.rows(in: "erasure_erased_pids", columns: [0])).isEmpty
        if !services.keys.subjects.buckets.retired.isEmpty && (rotated || rewrapped) { destroyRetired() }
        // As the leader does before it signs: what the erasure deleted leaves this node's WAL too.
        if erased {
            let services = self.services
            Task { _ = await ErasureService.truncateWAL(services) }
        }
    }

    private func destroyRetired() {
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

    /// After a snapshot: retired versions its rows no longer use go.
    func finishedInstall() {
        destroyRetired()
    }
}
