import DomicileCrypto
import DomicileModel
import DomicilePrivacy
import DomicileStorage

/// An erasure request as stored. The regions it waits for are rows of
/// `erasure_regions`, so the cross-region cascade adds regions without
/// changing the request's shape.
struct ErasureRequest: Sendable {
    enum Status: String, Sendable {
        case pending
        case complete
    }

    let erasureID: String
    let requestedAt: Timestamp
    let requestedBy: String
    let originRegion: RegionID
    let jurisdiction: String
    let dueAt: Timestamp
    let erasedPIDs: [String]
    let status: Status
    let completedAt: Timestamp?
    /// Region → `pending` or `erased`.
    var regions: [RegionID: String]
    var acks: [ErasureAck]

    func isOverdue(at now: Timestamp) -> Bool { status == .pending && dueAt < now }

    var certificate: ErasureCertificate? {
        guard status == .complete, let completedAt else { return nil }
        return ErasureCertificate(erasureID: erasureID, requestedAt: requestedAt, completedAt: completedAt, acks: acks)
    }
}

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
    static func eraseSubject(_ pid: PID, vectors: VectorCollections, in database: Database) throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        let collections = try VectorRecords.purge(pid, purposes: nil, in: database)
        vectors.remove(pid, from: collections)
        counts["vectors"] = Int64(collections.count)
        func run(_ table: String, _ sql: String) throws {
            try database.execute(sql, [pid.rawValue])
            counts[table, default: 0] += Int64(database.changes)
        }
        try run("features", "DELETE FROM features WHERE pid = ?")
        try run("identities", "DELETE FROM identities WHERE pid = ?")
        try run("consent_grants", "DELETE FROM consent_active WHERE pid = ?")
        try run("consent_receipts", """
            UPDATE consent_receipts SET action = '', purposes = '', basis = NULL, source = '', collected_at = 0, expires_at = NULL,
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

    static func insert(_ request: ErasureRequest, in database: Database) throws {
        try database.execute("""
            INSERT INTO erasure_requests (erasure_id, requested_at, requested_by, origin_region, jurisdiction, due_at, link, erased_pids,
                status, completed_at)
            VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)
            """, [request.erasureID, request.requestedAt.milliseconds, request.requestedBy, request.originRegion.rawValue,
                  request.jurisdiction, request.dueAt.milliseconds, request.erasedPIDs.joined(separator: ","), request.status.rawValue,
                  request.completedAt?.milliseconds])
        for (region, status) in request.regions {
            try database.execute("INSERT INTO erasure_regions (erasure_id, region, status) VALUES (?, ?, ?)",
                                 [request.erasureID, region.rawValue, status])
        }
        for ack in request.acks {
            try database.execute("""
                INSERT INTO erasure_acks (erasure_id, region, node, erased_at, counts, signature, public_key) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [ack.erasureID, ack.region.rawValue, ack.node, ack.erasedAt.milliseconds, encode(ack.counts),
                      ack.signature, ack.publicKey.rawRepresentation])
        }
    }

    /// Counts as stored: `table=count` pairs, comma-separated, sorted.
    static func encode(_ counts: [String: Int64]) -> String {
        counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func decodeCounts(_ text: String) -> [String: Int64]? {
        var counts: [String: Int64] = [:]
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: "=")
            guard parts.count == 2, let count = Int64(parts[1]) else { return nil }
            counts[String(parts[0])] = count
        }
        return counts
    }

    static let requestColumns = "erasure_id, requested_at, requested_by, origin_region, jurisdiction, due_at, erased_pids, status, completed_at"

    static func find(_ erasureID: String, in database: Database) throws -> ErasureRequest? {
        try database.fetchAll("SELECT \(requestColumns) FROM erasure_requests WHERE erasure_id = ?", [erasureID], decode)
            .first.map { try withRegionsAndAcks($0, in: database) }
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
        return try database.fetchAll(sql, arguments, decode).map { try withRegionsAndAcks($0, in: database) }
    }

    /// A request row, its regions and acks still to be read.
    private static func decode(_ row: Row) throws -> ErasureRequest {
        ErasureRequest(
            erasureID: row.text(0), requestedAt: Timestamp(milliseconds: row.int64(1)), requestedBy: row.text(2),
            originRegion: try RegionID(row.text(3)), jurisdiction: row.text(4), dueAt: Timestamp(milliseconds: row.int64(5)),
            erasedPIDs: row.text(6).split(separator: ",").map(String.init),
            status: ErasureRequest.Status(rawValue: row.text(7)) ?? .pending,
            completedAt: row.optionalInt64(8).map(Timestamp.init(milliseconds:)), regions: [:], acks: [])
    }

    private static func withRegionsAndAcks(_ request: ErasureRequest, in database: Database) throws -> ErasureRequest {
        var request = request
        let erasureID = request.erasureID
        try database.forEach("SELECT region, status FROM erasure_regions WHERE erasure_id = ?", [erasureID]) { row in
            if let region = try? RegionID(row.text(0)) { request.regions[region] = row.text(1) }
        }
        request.acks = try database.fetchAll("""
            SELECT region, node, erased_at, counts, signature, public_key FROM erasure_acks WHERE erasure_id = ? ORDER BY region
            """, [erasureID]) { row -> ErasureAck? in
            guard let region = try? RegionID(row.text(0)), let key = try? Ed25519PublicKey(rawRepresentation: row.blob(5)),
                  let counts = decodeCounts(row.text(3)) else { return nil }
            return ErasureAck(erasureID: erasureID, region: region, node: row.text(1), erasedAt: Timestamp(milliseconds: row.int64(2)),
                              counts: counts, signature: row.blob(4), publicKey: key)
        }.compactMap { $0 }
        return request
    }
}
