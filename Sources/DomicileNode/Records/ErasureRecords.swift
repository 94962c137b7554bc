import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// Erasure in SQLite: the local erasure of a subject, and the request
/// records with their per-region state and signed acks.
enum ErasureRecords {
    /// Days to answer an erasure request, per jurisdiction: GDPR Art. 12(3)
    /// one month (taken as 30 days), CPRA 45 days, LGPD 15 days.
    static let deadlineDays: [String: Int64] = ["gdpr": 30, "cpra": 45, "lgpd": 15]
    static let defaultDeadlineDays: Int64 = 30

    /// The tables an ack counts, always all of them (zeros included), so
    /// every certificate has the same shape.
    static let countedTables = ["consent_grants", "consent_receipts", "features", "identities", "reidentifications", "subjects", "vectors"]

    /// Erases one subject in the caller's transaction: its features,
    /// vectors (out of the in-memory indexes too), identities, active
    /// consent and wrapped key (crypto-shredding whatever
    /// copy of its ciphertexts survives elsewhere) are deleted; its receipts
    /// are redacted to their hash links; re-identifications not yet
    /// fulfilled are cancelled. Returns rows affected per table.
    static func eraseSubject(_ pid: PID, vectors: VectorCollections, now: Timestamp, in database: Database) throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        let collections = try VectorRecords.purge(pid, purposes: nil, now: now, in: database)
        vectors.remove(pid, from: collections)
        counts["vectors"] = Int64(collections.count)
        func run(_ table: String, _ sql: String) throws {
            try database.execute(sql, [pid.rawValue])
            counts[table, default: 0] += Int64(database.changes)
        }
        try run("features", "DELETE FROM features WHERE pid = ?")
        try run("identities", "DELETE FROM identities WHERE pid = ?")
        try run("consent_grants", "DELETE FROM consent_active WHERE pid = ?")
        // A receipt's purposes are its content: deleted with it, counted with the receipts they belong to.
        try database.execute("""
            DELETE FROM consent_receipt_purposes WHERE receipt_id IN (SELECT receipt_id FROM consent_receipts WHERE pid = ?)
            """, [pid.rawValue])
        try run("consent_receipts", """
            UPDATE consent_receipts SET action = '', basis = NULL, source = '', collected_at = 0, expires_at = NULL,
                recorded_at = 0, redacted = 1
            WHERE pid = ? AND redacted = 0
            """)
        try run("reidentifications", """
            UPDATE reidentifications SET status = 'cancelled' WHERE pid = ? AND status IN ('pending_approval', 'approved')
            """)
        // Budget bookkeeping, not data: deleted, not counted in the ack.
        try database.execute("DELETE FROM embedding_charges WHERE pid = ?", [pid.rawValue])
        try run("subjects", "DELETE FROM subjects WHERE pid = ?")
        return counts
    }

    /// The subjects an identifier may be stored under here: its pid under
    /// every live pseudonymization key, and every subject with its link
    /// under every link key.
    static func subjects(matching identifier: Identifier, keys: RegionKeys, in database: Database) throws -> [PID] {
        var found: Set<PID> = []
        for pid in keys.pseudonymizers.candidates(for: identifier) where try SubjectRecords.exists(pid, in: database) {
            found.insert(pid)
        }
        for linkKey in keys.links {
            try database.forEach("SELECT pid FROM subjects WHERE link = ? AND link_version = ?",
                                 [linkKey.link(for: identifier), linkKey.version]) { row in
                if let pid = try? PID(parsing: row.text(0)) { found.insert(pid) }
            }
        }
        return found.sorted()
    }

    /// The link hash a request about `target` signs (docs/FORMATS.md): of
    /// the identifier's link under the newest link key; for a pid, of the
    /// subject's stored link, or of the pid when this node does not hold it.
    static func linkHash(of target: ErasureService.Target, keys: RegionKeys, in database: Database) throws -> [UInt8] {
        switch target {
        case .identifier(let identifier):
            let newest = keys.links.max { $0.version < $1.version }!
            return SignedErasureRequest.linkHash(link: newest.link(for: identifier), version: newest.version)
        case .pid(let pid):
            let stored = try database.fetchAll("SELECT link, link_version FROM subjects WHERE pid = ?", [pid.rawValue]) {
                ($0.blob(0), $0.int64(1))
            }.first
            guard let (link, version) = stored else { return SignedErasureRequest.linkHash(pid: pid) }
            guard let version = UInt32(exactly: version) else { throw StorageError.corrupt(table: "subjects", column: "link_version") }
            return SignedErasureRequest.linkHash(link: link, version: version)
        case .intent(let linkHash, _):
            return linkHash
        }
    }

    /// The subjects whose stored link has `linkHash` (an intent from another
    /// region names the subject by its link's hash only). A scan of every
    /// subject's link: one SHA-256 each (docs/FEDERATION.md, "Not yet").
    static func subjects(withLinkHash linkHash: [UInt8], in database: Database) throws -> [PID] {
        var found: [PID] = []
        try database.forEach("SELECT pid, link, link_version FROM subjects", []) { row in
            guard let version = UInt32(exactly: row.int64(2)),
                  SignedErasureRequest.linkHash(link: row.blob(1), version: version) == linkHash,
                  let pid = try? PID(parsing: row.text(0)) else { return }
            found.append(pid)
        }
        return found
    }

    /// Requests made in `region` that expect other regions and that the
    /// federation has not carried yet, oldest first, with the pids they name.
    static func unpublishedIntents(of region: RegionID, limit: Int, in database: Database) throws -> [ErasureRequest] {
        try database.fetchAll("""
            SELECT \(requestColumns) FROM erasure_requests
            WHERE origin_region = ? AND request_signature IS NOT NULL
                AND erasure_id IN (SELECT erasure_id FROM erasure_regions WHERE region != ?)
                AND erasure_id NOT IN (SELECT record_id FROM federation_entries WHERE origin = ? AND kind = 2 AND record_id IS NOT NULL)
            ORDER BY requested_at, erasure_id LIMIT ?
            """, [region.rawValue, region.rawValue, region.rawValue, limit], RequestRow.init).map { try $0.request(in: database) }
    }

    /// This region's acks for requests of other regions that the federation
    /// has not carried yet.
    static func unpublishedAcks(of region: RegionID, limit: Int, in database: Database) throws -> [ErasureAck] {
        let ids = try database.fetchAll("""
            SELECT a.erasure_id FROM erasure_node_acks a JOIN erasure_requests r ON r.erasure_id = a.erasure_id
            WHERE a.region = ? AND a.scope = 'region' AND r.origin_region != ?
                AND a.erasure_id NOT IN (SELECT record_id FROM federation_entries WHERE origin = ? AND kind = 3 AND record_id IS NOT NULL)
            ORDER BY a.erased_at, a.erasure_id LIMIT ?
            """, [region.rawValue, region.rawValue, region.rawValue, limit]) { $0.text(0) }
        return try ids.compactMap { try find($0, in: database)?.acks.first { $0.region == region && $0.scope == .region } }
    }

    /// An ack that does not answer the request (another request or subject,
    /// a node not expected, a second ack of a node, a bad signature): refused.
    struct UnexpectedAck: Error, CustomStringConvertible {
        let erasureID: String
        var description: String { "erasure \(erasureID): the ack does not answer this request from one of its expected nodes" }
    }

    /// Records a signed request, pending in every expected region, with
    /// what it erased here (`counts`, per table).
    static func insert(_ request: SignedErasureRequest, requestedBy: String, erasedPIDs: [String], counts: [String: Int64],
                       in database: Database) throws {
        try database.execute("""
            INSERT INTO erasure_requests (erasure_id, requested_at, requested_by, origin_region, jurisdiction, due_at, link,
                status, completed_at, origin_node, policy_version, link_hash, request_signature, public_key)
            VALUES (?, ?, ?, ?, ?, ?, NULL, 'pending', NULL, ?, ?, ?, ?, ?)
            """, [request.erasureID, request.requestedAt.milliseconds, requestedBy, request.originRegion.rawValue,
                  request.jurisdiction, request.dueAt.milliseconds, request.originNode,
                  request.policyVersion, request.linkHash, request.signature, request.publicKey.rawRepresentation])
        try insertErasedPIDs(erasedPIDs, of: request.erasureID, in: database)
        for (table, count) in counts.sorted(by: { $0.key < $1.key }) {
            try database.execute("INSERT INTO erasure_local_counts (erasure_id, table_name, count) VALUES (?, ?, ?)",
                                 [request.erasureID, table, count])
        }
        for (region, nodes) in request.expectedNodes {
            try database.execute("INSERT INTO erasure_regions (erasure_id, region, status) VALUES (?, ?, 'pending')",
                                 [request.erasureID, region.rawValue])
            for node in nodes {
                try database.execute("INSERT INTO erasure_expected_nodes (erasure_id, region, node) VALUES (?, ?, ?)",
                                     [request.erasureID, region.rawValue, node])
            }
        }
    }

    /// Records one ack. A region is `erased` once every expected node of it
    /// has acked, or one of its nodes for the whole region (scope `region`);
    /// the request is `complete` once every expected region is, and then
    /// this node (`completer`, of region `here`) signs the completion over the
    /// request and the acks with `key` — if `here` is the origin region.
    /// Another region's copy of the request is `complete` once that region
    /// has acked (its part is done; the certificate is the origin's).
    static func record(_ ack: ErasureAck, here: RegionID, completer: String, key: Ed25519PrivateKey, now: Timestamp,
                       in database: Database) throws -> ErasureRequest {
        guard var request = try find(ack.erasureID, in: database), let signed = request.signed else {
            throw UnexpectedAck(erasureID: ack.erasureID)
        }
        // A region acks once: another ack for the whole region (a retry, a second leader's) changes nothing.
        if ack.scope == .region, request.acks.contains(where: { $0.region == ack.region && $0.scope == .region }) { return request }
        let regionAcked = request.acks.contains { $0.region == ack.region && ($0.scope == .region || ack.scope == .region) }
        guard ack.isValid, ack.requestHash == signed.hash, ack.linkHash == signed.linkHash,
              let expected = signed.expectedNodes[ack.region], ack.scope == .region || expected.contains(ack.node), !regionAcked,
              !request.acks.contains(where: { $0.region == ack.region && $0.node == ack.node }) else {
            throw UnexpectedAck(erasureID: ack.erasureID)
        }
        try database.execute("""
            INSERT INTO erasure_node_acks (erasure_id, region, node, scope, request_hash, erased_at, link_hash, wal_truncated,
                policy_version, signature, public_key)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [ack.erasureID, ack.region.rawValue, ack.node, ack.scope.rawValue, ack.requestHash, ack.erasedAt.milliseconds,
                  ack.linkHash, ack.walTruncated ? 1 : 0, ack.policyVersion, ack.signature, ack.publicKey.rawRepresentation])
        try insertCounts(ack.counts, erasureID: ack.erasureID, region: ack.region.rawValue, node: ack.node, in: database)
        request.acks.append(ack)
        let waiting = request.waitingForNodes
        if waiting[ack.region] == nil {
            try database.execute("UPDATE erasure_regions SET status = 'erased' WHERE erasure_id = ? AND region = ?",
                                 [ack.erasureID, ack.region.rawValue])
        }
        if waiting.isEmpty, here == signed.originRegion {
            let signature = ErasureCompletion.signature(request: signed, completedAt: now, acks: request.acks, key: key)
            try database.execute("""
                UPDATE erasure_requests SET status = 'complete', completed_at = ?, completion_signature = ?, completed_by = ?,
                    completion_public_key = ?
                WHERE erasure_id = ?
                """, [now.milliseconds, signature, completer, key.publicKey.rawRepresentation, ack.erasureID])
        } else if here != signed.originRegion, ack.region == here {
            // Another region's request: this region's part is done once it has acked. The certificate is the origin's.
            try database.execute("UPDATE erasure_requests SET status = 'complete', completed_at = ? WHERE erasure_id = ?",
                                 [now.milliseconds, ack.erasureID])
        }
        return try find(ack.erasureID, in: database)!
    }

    /// The rows a request erased here, per table (empty when it erased nothing here).
    static func localCounts(of erasureID: String, in database: Database) throws -> [String: Int64] {
        Dictionary(uniqueKeysWithValues: try database.fetchAll(
            "SELECT table_name, count FROM erasure_local_counts WHERE erasure_id = ?", [erasureID]) { ($0.text(0), $0.int64(1)) })
    }

    /// Pending requests erased here (through the region log) that still wait
    /// for this region's ack, oldest first.
    static func awaitingAck(of region: RegionID, limit: Int, in database: Database) throws -> [ErasureRequest] {
        try database.fetchAll("""
            SELECT \(requestColumns) FROM erasure_requests
            WHERE status = 'pending'
                AND erasure_id IN (SELECT erasure_id FROM erasure_regions WHERE region = ? AND status = 'pending')
                AND erasure_id IN (SELECT erasure_id FROM erasure_local_counts)
            ORDER BY requested_at, erasure_id LIMIT ?
            """, [region.rawValue, limit], RequestRow.init).map { try $0.request(in: database) }
    }

    /// The subjects a request erased here: one row each.
    static func insertErasedPIDs(_ pids: [String], of erasureID: String, in database: Database) throws {
        for pid in pids {
            try database.execute("INSERT INTO erasure_erased_pids (erasure_id, pid) VALUES (?, ?)", [erasureID, pid])
        }
    }

    /// An ack's counts: one row per table.
    static func insertCounts(_ counts: [String: Int64], erasureID: String, region: String, node: String,
                             in database: Database) throws {
        for (table, count) in counts.sorted(by: { $0.key < $1.key }) {
            try database.execute("""
                INSERT INTO erasure_ack_counts (erasure_id, region, node, table_name, count) VALUES (?, ?, ?, ?, ?)
                """, [erasureID, region, node, table, count])
        }
    }

    static let requestColumns = """
        erasure_id, requested_at, requested_by, origin_region, jurisdiction, due_at, status, completed_at,
        origin_node, policy_version, link_hash, request_signature, public_key, completion_signature,
        completed_by, completion_public_key
        """

    static func find(_ erasureID: String, in database: Database) throws -> ErasureRequest? {
        try database.fetchAll("SELECT \(requestColumns) FROM erasure_requests WHERE erasure_id = ?", [erasureID], RequestRow.init)
            .first.map { try $0.request(in: database) }
    }

    /// Requests by status (`overdue`: pending past their due date), newest first.
    static func list(status: String?, now: Timestamp, limit: Int, in database: Database) throws -> [ErasureRequest] {
        var sql = "SELECT \(requestColumns) FROM erasure_requests"
        var arguments: [any DatabaseValueConvertible] = []
        switch status {
        case "pending", "complete":
            sql += " WHERE status = ?"
            arguments.append(status!)
        case "overdue":
            sql += " WHERE status = 'pending' AND due_at < ?"
            arguments.append(now.milliseconds)
        default:
            break
        }
        sql += " ORDER BY requested_at DESC, erasure_id LIMIT ?"
        arguments.append(limit)
        return try database.fetchAll(sql, arguments, RequestRow.init).map { try $0.request(in: database) }
    }

    /// The columns of a request row, copied out before its regions, expected
    /// nodes and acks are read.
    private struct RequestRow {
        let erasureID: String
        let requestedAt: Timestamp
        let requestedBy: String
        let originRegion: String
        let jurisdiction: String
        let dueAt: Timestamp
        let status: String
        let completedAt: Timestamp?
        let originNode: String?
        let policyVersion: Int64?
        let linkHash: [UInt8]?
        let requestSignature: [UInt8]?
        let publicKey: [UInt8]?
        let completionSignature: [UInt8]?
        let completedBy: String?
        let completionPublicKey: [UInt8]?

        init(_ row: Row) {
            erasureID = row.text(0)
            requestedAt = Timestamp(milliseconds: row.int64(1))
            requestedBy = row.text(2)
            originRegion = row.text(3)
            jurisdiction = row.text(4)
            dueAt = Timestamp(milliseconds: row.int64(5))
            status = row.text(6)
            completedAt = row.optionalInt64(7).map(Timestamp.init(milliseconds:))
            originNode = row.optionalText(8)
            policyVersion = row.optionalInt64(9)
            linkHash = row.optionalBlob(10)
            requestSignature = row.optionalBlob(11)
            publicKey = row.optionalBlob(12)
            completionSignature = row.optionalBlob(13)
            completedBy = row.optionalText(14)
            completionPublicKey = row.optionalBlob(15)
        }

        func request(in database: Database) throws -> ErasureRequest {
            // A stored record that does not decode is a typed failure, never a row silently dropped from a certificate.
            guard let originRegion = try? RegionID(originRegion) else {
                throw StorageError.corrupt(table: "erasure_requests", column: "origin_region")
            }
            guard let status = ErasureRequest.Status(rawValue: status) else {
                throw StorageError.corrupt(table: "erasure_requests", column: "status")
            }
            var regions: [RegionID: ErasureRequest.RegionState] = [:]
            for (name, state) in try database.fetchAll("SELECT region, status FROM erasure_regions WHERE erasure_id = ?", [erasureID],
                                                       { ($0.text(0), $0.text(1)) }) {
                guard let region = try? RegionID(name), let state = ErasureRequest.RegionState(rawValue: state) else {
                    throw StorageError.corrupt(table: "erasure_regions", column: "status")
                }
                regions[region] = state
            }
            var completer: ErasureRequest.Completer?
            if let completedBy, let completionPublicKey {
                guard let key = try? Ed25519PublicKey(rawRepresentation: completionPublicKey) else {
                    throw StorageError.corrupt(table: "erasure_requests", column: "completion_public_key")
                }
                completer = ErasureRequest.Completer(node: completedBy, publicKey: key)
            }
            return ErasureRequest(erasureID: erasureID, requestedAt: requestedAt, requestedBy: requestedBy, originRegion: originRegion,
                                  jurisdiction: jurisdiction, dueAt: dueAt, erasedPIDs: try erasedPIDs(in: database),
                                  status: status, completedAt: completedAt, signed: try signedRequest(originRegion, in: database),
                                  completionSignature: completionSignature, completer: completer, regions: regions,
                                  acks: try acks(in: database))
        }

        private func erasedPIDs(in database: Database) throws -> [String] {
            try database.fetchAll("SELECT pid FROM erasure_erased_pids WHERE erasure_id = ? ORDER BY pid", [erasureID]) { row in
                try row.decode(0, table: "erasure_erased_pids") { try PID(parsing: $0).rawValue }
            }
        }

        /// The signed request, or nil for a request recorded before requests were signed.
        private func signedRequest(_ originRegion: RegionID, in database: Database) throws -> SignedErasureRequest? {
            guard let requestSignature else { return nil }
            guard let originNode, let policyVersion, let linkHash, let publicKey,
                  let key = try? Ed25519PublicKey(rawRepresentation: publicKey) else {
                throw StorageError.corrupt(table: "erasure_requests", column: "request_signature")
            }
            var expectedNodes: [RegionID: [String]] = [:]
            for (name, node) in try database.fetchAll("SELECT region, node FROM erasure_expected_nodes WHERE erasure_id = ?", [erasureID],
                                                      { ($0.text(0), $0.text(1)) }) {
                guard let region = try? RegionID(name) else { throw StorageError.corrupt(table: "erasure_expected_nodes", column: "region") }
                expectedNodes[region, default: []].append(node)
            }
            return SignedErasureRequest(erasureID: erasureID, requestedAt: requestedAt, dueAt: dueAt, jurisdiction: jurisdiction,
                                        originRegion: originRegion, originNode: originNode, policyVersion: policyVersion,
                                        linkHash: linkHash, expectedNodes: expectedNodes, signature: requestSignature, publicKey: key)
        }

        private func acks(in database: Database) throws -> [ErasureAck] {
            try database.fetchAll("""
                SELECT region, node, scope, request_hash, erased_at, link_hash, wal_truncated, policy_version, signature, public_key
                FROM erasure_node_acks WHERE erasure_id = ? ORDER BY region, node
                """, [erasureID]) { row in
                (row.text(0), row.text(1), row.text(2), row.blob(3), row.int64(4), row.blob(5), row.bool(6), row.int64(7),
                 row.blob(8), row.blob(9))
            }.map { regionName, node, scope, requestHash, erasedAt, linkHash, walTruncated, policyVersion, signature, publicKey in
                guard let region = try? RegionID(regionName), let scope = ErasureScope(rawValue: scope),
                      let key = try? Ed25519PublicKey(rawRepresentation: publicKey) else {
                    throw StorageError.corrupt(table: "erasure_node_acks", column: "ack")
                }
                let counts = try ackCounts(region: regionName, node: node, in: database)
                return ErasureAck(erasureID: erasureID, requestHash: requestHash, region: region, node: node, scope: scope,
                                  erasedAt: Timestamp(milliseconds: erasedAt), counts: counts, linkHash: linkHash,
                                  walTruncated: walTruncated, policyVersion: policyVersion, signature: signature, publicKey: key)
            }
        }

        /// One ack's counts (the primary key keeps each table once).
        private func ackCounts(region: String, node: String, in database: Database) throws -> [String: Int64] {
            let rows = try database.fetchAll("""
                SELECT table_name, count FROM erasure_ack_counts WHERE erasure_id = ? AND region = ? AND node = ?
                """, [erasureID, region, node]) { ($0.text(0), $0.int64(1)) }
            return Dictionary(uniqueKeysWithValues: rows)
        }
    }
}
