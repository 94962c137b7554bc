import DomicileCrypto
import DomicileModel
import DomicileStorage

/// The node's keyring while it runs, and the wrapping of subject keys under
/// its bucket keys (docs/FORMATS.md, "Wrapped subject key").
///
/// Every change to the keyring is made on a copy, written durably (sealed,
/// atomically, fsync'd) by `persist`, and only then installed: the file and
/// the memory never disagree about a destroyed key, and one lock makes this
/// the keyring's only writer in the process.
final class SubjectKeyring: Sendable {
    typealias Wrapping = WrappedSubjectKey.Wrapping

    private let keyring: Locked<Keyring>
    private let legacy: KeySet
    private let persist: @Sendable (Keyring) throws -> Void
    private let clock: @Sendable () -> Int64
    /// Where new key material and wrapping nonces come from (the CSPRNG in
    /// production; seeded when a run is replayed).
    private let random: any RandomSource

    init(keyring: Keyring, legacy: KeySet, clock: @escaping @Sendable () -> Int64, random: any RandomSource,
         persist: @escaping @Sendable (Keyring) throws -> Void) {
        self.keyring = Locked(keyring)
        self.legacy = legacy
        self.clock = clock
        self.random = random
        self.persist = persist
    }

    var buckets: SubjectKeyBuckets { keyring.withLock { $0.buckets } }

    /// How long `destroyRetired` lets reads that began before an erasure's commit finish.
    static let graceMilliseconds: Int64 = 2_000

    /// Makes a change to the keyring durable, then installs it.
    private func change(_ body: (inout Keyring) throws -> Void) throws {
        try keyring.withLock { current in
            var next = current
            try body(&next)
            try persist(next)
            current = next
        }
    }

    /// Installs bucket keys in a keyring from before them.
    func installBucketsIfMissing() throws {
        guard buckets.count == 0 else { return }
        let now = clock()
        try change { $0.buckets = .generate(createdAt: now) }
    }

    // MARK: Wrapping

    /// A fresh subject key, wrapped under its bucket's current key.
    func newKey(for pid: PID) -> (key: AESGCMKey, wrapped: [UInt8], wrapping: Wrapping) {
        let buckets = self.buckets
        let bucketKey = buckets.current(buckets.bucket(of: pid))!
        var random = self.random.generator()
        let secret = SecretBytes(randomCount: AESGCM.keyByteCount, using: &random)
        let wrapped = WrappedSubjectKey.wrap(secret, for: pid, under: bucketKey, using: &random)
        return (try! AESGCMKey(version: 1, secret: secret), wrapped,
                Wrapping(bucket: bucketKey.bucket, version: bucketKey.version))
    }

    /// The key that `wrapped` protects; nil when the key that wrapped it was
    /// destroyed (the subject was erased: its data is noise to this keyring).
    /// A wrapped key that does not open under a key that exists is corrupt
    /// (`StorageError.corrupt`, answered 500 `corrupt_data`).
    func unwrap(_ wrapped: [UInt8], for pid: PID) throws -> AESGCMKey? {
        var raw: [UInt8]
        do {
            if let wrapping = Self.wrapping(of: wrapped) {
                guard let bucketKey = buckets.key(wrapping.bucket, version: wrapping.version) else { return nil }
                raw = try WrappedSubjectKey.unwrap(wrapped, for: pid, under: bucketKey)
            } else {
                raw = try legacy.open(wrapped, associatedData: Self.legacyAssociatedData(pid))
            }
        } catch {
            throw StorageError.corrupt(table: "subjects", column: "wrapped_key")
        }
        defer { for index in raw.indices { raw[index] = 0 } }
        return try AESGCMKey(version: 1, secret: SecretBytes(raw))
    }

    /// Whether the key that wrapped `wrapped` still exists (no decryption).
    func isLive(_ wrapped: [UInt8]) -> Bool {
        guard let wrapping = Self.wrapping(of: wrapped) else {
            return (try? Envelope.keyVersion(of: wrapped)).flatMap(legacy.key(version:)) != nil
        }
        return buckets.key(wrapping.bucket, version: wrapping.version) != nil
    }

    static func wrapping(of wrapped: [UInt8]) -> Wrapping? { WrappedSubjectKey.wrapping(of: wrapped) }

    static func legacyAssociatedData(_ pid: PID) -> [UInt8] { Array("subject-key/\(pid.rawValue)".utf8) }

    // MARK: Rotation

    /// Erasing `pid` rotates its bucket, in the erasure's transaction: the
    /// next version (one step of the ratchet) is made current and saved (the
    /// old one kept), and the keys of the bucket's other subjects are
    /// re-wrapped under it. The old version is destroyed by `destroyRetired`
    /// once this transaction has committed.
    func rotateBucket(of pid: PID, in database: Database) throws {
        let bucket = buckets.bucket(of: pid)
        let now = clock()
        try change { $0.buckets.rotate(bucket, createdAt: now) }
        // The region's other nodes ratchet to this version when they apply it.
        try database.execute(
            "INSERT INTO bucket_versions (bucket, version) VALUES (?, ?) ON CONFLICT (bucket) DO UPDATE SET version = excluded.version",
            [Int64(bucket), Int64(buckets.current(bucket)!.version)])
        try rewrap(bucket: bucket, in: database)
    }

    /// On a follower, before it applies a replicated change: every bucket
    /// whose current version is below a version the change's `subjects` rows
    /// are wrapped under is ratcheted up to it (each version seen is
    /// installed; the region's other nodes derived the same keys), and the
    /// keyring is saved once. Versions at or below current are ignored; the
    /// retired ones go with the next `destroyRetired`. Returns how many
    /// versions were installed. A wrapping naming no bucket of this keyring,
    /// or a jump of more than `SubjectKeyBuckets.ratchetStepsMax`, is refused
    /// (`StorageError.corrupt`) before anything changes.
    @discardableResult
    func catchUp(to wrappings: [Wrapping]) throws -> Int {
        let buckets = self.buckets
        var ahead: [Wrapping] = []
        for wrapping in Set(wrappings).sorted(by: { ($0.bucket, $0.version) < ($1.bucket, $1.version) }) {
            guard Int(wrapping.bucket) < buckets.count else { throw StorageError.corrupt(table: "subjects", column: "wrap_bucket") }
            let current = buckets.current(wrapping.bucket)!.version
            guard wrapping.version > current else { continue }
            guard wrapping.version - current <= SubjectKeyBuckets.ratchetStepsMax else {
                throw StorageError.corrupt(table: "subjects", column: "wrap_version")
            }
            ahead.append(wrapping)
        }
        guard !ahead.isEmpty else { return 0 }
        let now = clock()
        try change { keyring in
            for wrapping in ahead { keyring.buckets.ratchet(wrapping.bucket, to: wrapping.version, createdAt: now) }
        }
        return ahead.count
    }

    /// Re-wraps every key of `bucket` not under its current version. Keys
    /// whose version is already gone stay as they are (they are shredded).
    /// Returns how many were re-wrapped.
    @discardableResult
    func rewrap(bucket: UInt16, in database: Database) throws -> Int {
        let buckets = self.buckets
        guard let current = buckets.current(bucket) else { return 0 }
        let rows = try database.fetchAll("SELECT pid, wrapped_key FROM subjects WHERE wrap_bucket = ? AND wrap_version < ?",
                                         [Int64(bucket), Int64(current.version)]) { ($0.text(0), $0.blob(1)) }
        var count = 0
        var random = self.random.generator()
        for (text, wrapped) in rows {
            let pid = try StorageError.decoded(try? PID(parsing: text), table: "subjects", column: "pid")
            guard let key = try unwrap(wrapped, for: pid) else { continue }
            try store(WrappedSubjectKey.wrap(key.secret, for: pid, under: current, using: &random),
                      wrapping: Wrapping(bucket: bucket, version: current.version), of: pid, in: database)
            count += 1
        }
        return count
    }

    /// Moves keys still wrapped under the region data key into their buckets,
    /// `limit` rows after rowid `after` at a time. Returns the last rowid
    /// seen, nil when none are left.
    func rewrapLegacy(after: Int64, limit: Int, in database: Database) throws -> Int64? {
        let rows = try database.fetchAll("""
            SELECT rowid, pid, wrapped_key FROM subjects WHERE wrap_bucket IS NULL AND rowid > ? ORDER BY rowid LIMIT ?
            """, [after, Int64(limit)]) { ($0.int64(0), $0.text(1), $0.blob(2)) }
        let buckets = self.buckets
        var random = self.random.generator()
        for (_, text, wrapped) in rows {
            let pid = try StorageError.decoded(try? PID(parsing: text), table: "subjects", column: "pid")
            guard let key = try unwrap(wrapped, for: pid) else { continue }
            let current = buckets.current(buckets.bucket(of: pid))!
            try store(WrappedSubjectKey.wrap(key.secret, for: pid, under: current, using: &random),
                      wrapping: Wrapping(bucket: current.bucket, version: current.version), of: pid, in: database)
        }
        return rows.last?.0
    }

    private func store(_ wrapped: [UInt8], wrapping: Wrapping, of pid: PID, in database: Database) throws {
        try database.execute("UPDATE subjects SET wrapped_key = ?, wrap_bucket = ?, wrap_version = ? WHERE pid = ?",
                             [wrapped, Int64(wrapping.bucket), Int64(wrapping.version), pid.rawValue])
    }

    /// After an erasure committed, before it is acknowledged: destroys every
    /// retired bucket version that no committed row uses, rewriting the
    /// keyring file before it returns. The rows are read on a reader, which
    /// sees only committed rows, so a rotation still in flight, or one rolled
    /// back, keeps the versions its rows need. Reads that began before the
    /// commit may still hold a bucket-mate's row wrapped under a retired
    /// version: they are let finish first (for at most `graceMilliseconds`),
    /// so a live subject never reads as absent because of someone's erasure.
    func destroyRetired(_ store: Store) async throws {
        let retired = buckets.retired
        guard !retired.isEmpty else { return }
        // A read still running after the grace (a long scan) skips such a row as absent.
        _ = await store.awaitEarlierReads(timeoutMilliseconds: Self.graceMilliseconds)
        let unused = try store.read { database in
            try retired.filter { key in
                try database.fetchOne("SELECT 1 FROM subjects WHERE wrap_bucket = ? AND wrap_version = ? LIMIT 1",
                                      [Int64(key.bucket), Int64(key.version)]) { _ in true } == nil
            }
        }
        guard !unused.isEmpty else { return }
        try change { $0.buckets.destroy(unused) }
    }

    /// After the database was replaced by a region log snapshot (and at
    /// start): ratchets every bucket up to the versions the committed rows
    /// use, so rows a snapshot brought wrapped under later versions open. A
    /// row naming a bucket this keyring lacks, or a version beyond reach,
    /// means the keyring and the database do not belong together: refused
    /// (`StorageError.corrupt`), as in `catchUp`.
    @discardableResult
    func catchUp(toRowsOf store: Store) throws -> Int {
        try catchUp(to: try store.read { try Self.wrappings(in: $0) })
    }

    /// Each bucket and version the committed `subjects` rows use, once.
    /// And each rotation the region log ordered (`bucket_versions`), which a
    /// bucket left without subjects shows only there.
    static func wrappings(in database: Database) throws -> [Wrapping] {
        try database.fetchAll("""
            SELECT DISTINCT wrap_bucket, wrap_version FROM subjects WHERE wrap_bucket IS NOT NULL
            UNION SELECT bucket, version FROM bucket_versions
            """) { row in
            Wrapping(bucket: try StorageError.decoded(UInt16(exactly: row.int64(0)), table: "subjects", column: "wrap_bucket"),
                     version: try StorageError.decoded(UInt32(exactly: row.int64(1)), table: "subjects", column: "wrap_version"))
        }
    }

    /// At start: finishes what a crash interrupted. Buckets catch up with the
    /// rows (a snapshot installed before the restart); legacy keys move into
    /// buckets; rotations left half-done (a retired version still installed)
    /// re-wrap their rows and destroy the retired versions.
    ///
    /// In a `replicated` region every change of `subjects` goes through the
    /// region log, which has not started yet: only retired versions no row
    /// uses are destroyed here. Rows a crash left under a retired version
    /// are re-wrapped by the next erasure in their bucket, which re-wraps
    /// every row not under the current version.
    func recover(_ store: Store, replicated: Bool = false) async throws {
        if replicated {
            try catchUp(toRowsOf: store)
            return try await destroyRetired(store)
        }
        try installBucketsIfMissing()
        try catchUp(toRowsOf: store)
        var last: Int64? = 0
        while let after = last {
            last = try await store.write { try self.rewrapLegacy(after: after, limit: 1_000, in: $0) }
        }
        let pending = Set(buckets.retired.map(\.bucket))
        if !pending.isEmpty {
            try await store.write { database in
                for bucket in pending { try self.rewrap(bucket: bucket, in: database) }
            }
        }
        try await destroyRetired(store)
    }
}
