import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicileStorage

/// `federation_entries`: the federation's entries this region holds
/// (docs/FEDERATION.md), written through the region log so every node of
/// the region has them; and what applying them does to the node's tables.
enum FederationRecords {
    /// Every entry held, each origin's in sequence order.
    static func entries(keys: RegionKeys, in database: Database) throws -> [FederationEntry] {
        try database.fetchAll("SELECT origin, seq, kind, record, retired FROM federation_entries ORDER BY origin, seq") { row in
            try entry(row, keys: keys)
        }
    }

    /// The entries at these positions (those held).
    static func entries(at positions: [(origin: String, seq: Int64)], keys: RegionKeys, in database: Database) throws -> [FederationEntry] {
        try positions.flatMap { position in
            try database.fetchAll("SELECT origin, seq, kind, record, retired FROM federation_entries WHERE origin = ? AND seq = ?",
                                  [position.origin, position.seq]) { try entry($0, keys: keys) }
        }
    }

    private static func entry(_ row: Row, keys: RegionKeys) throws -> FederationEntry {
        guard let origin = try? RegionID(row.text(0)), let seq = UInt64(exactly: row.int64(1)),
              let kindByte = UInt8(exactly: row.int64(2)), let kind = FederationRecordKind(rawValue: kindByte) else {
            throw StorageError.corrupt(table: "federation_entries", column: "origin, seq, kind")
        }
        guard let stored = row.optionalBlob(3) else {
            return FederationEntry(origin: origin, seq: seq, body: row.bool(4) ? .retired(kind) : .skipped(kind))
        }
        let bytes = kind == .noisedEmbedding ? try? keys.data.open(stored, associatedData: sealingData(origin, seq)) : stored
        guard let bytes, let record = try? FederationCodec.decodeRecord(kind, bytes) else {
            throw StorageError.corrupt(table: "federation_entries", column: "record")
        }
        return FederationEntry(origin: origin, seq: seq, body: .record(record))
    }

    /// Keeps `entries` (a position already held is left as it is: the
    /// machine hands each position once, and a record is immutable). A noised
    /// embedding is sealed under the region's data key, like any vector at rest.
    static func insert(_ entries: [FederationEntry], keys: RegionKeys, in database: Database) throws {
        for entry in entries {
            var record = try entry.body.record.map { try FederationCodec.encode($0) }
            if entry.body.kind == .noisedEmbedding, let plain = record {
                record = keys.data.seal(plain, associatedData: sealingData(entry.origin, entry.seq))
            }
            let retired: Int64 = if case .retired = entry.body { 1 } else { 0 }
            try database.execute("""
                INSERT OR IGNORE INTO federation_entries (origin, seq, kind, record, record_id, retired) VALUES (?, ?, ?, ?, ?, ?)
                """, [entry.origin.rawValue, Int64(entry.seq), Int64(entry.body.kind.rawValue), record, entry.body.record.map(recordID),
                      retired])
        }
    }

    /// Drops the bodies of entries the machine retired (superseded or erased
    /// noised embeddings): only the placeholder stays.
    static func retire(_ entries: [FederationEntry], in database: Database) throws {
        for entry in entries {
            try database.execute("""
                UPDATE federation_entries SET record = NULL, record_id = NULL, retired = 1 WHERE origin = ? AND seq = ?
                """, [entry.origin.rawValue, Int64(entry.seq)])
        }
    }

    /// The regions this region holds any entry of (a skip scan: one index seek per region).
    static func origins(in database: Database) throws -> Set<RegionID> {
        Set(try database.fetchAll("""
            WITH RECURSIVE o(origin) AS (
                SELECT min(origin) FROM federation_entries
                UNION ALL SELECT (SELECT min(origin) FROM federation_entries WHERE origin > o.origin) FROM o WHERE o.origin IS NOT NULL)
            SELECT origin FROM o WHERE origin IS NOT NULL
            """) { try? RegionID($0.text(0)) }.compactMap { $0 })
    }

    /// Other regions' current noised copies for `collection` (retractions excluded).
    static func replicas(of collection: Name, here region: RegionID, keys: RegionKeys, in database: Database) throws -> [NoisedEmbedding] {
        try database.fetchAll("""
            SELECT origin, seq, kind, record, retired FROM federation_entries
            WHERE kind = ? AND record_id >= ? AND record_id < ? AND origin != ? ORDER BY origin, seq
            """, [Int64(FederationRecordKind.noisedEmbedding.rawValue), collection.rawValue + "/", collection.rawValue + "0",
                  region.rawValue]) { row -> NoisedEmbedding? in
            guard case .noisedEmbedding(let embedding)? = try entry(row, keys: keys).body.record, embedding.vector != nil else { return nil }
            return embedding
        }.compactMap { $0 }
    }

    private static func sealingData(_ origin: RegionID, _ seq: UInt64) -> [UInt8] {
        Array("federation-entry/\(origin.rawValue)/\(seq)".utf8)
    }

    /// What a record is about: a release id, an erasure id, a collection and pid.
    static func recordID(_ record: FederationRecord) -> String {
        switch record {
        case .aggregate(let release): release.releaseID
        case .erasureIntent(let intent): intent.erasureID
        case .erasureAck(let ack): ack.erasureID
        case .noisedEmbedding(let embedding): "\(embedding.collection.rawValue)/\(embedding.pid.rawValue)"
        }
    }

    /// Applies other regions' records here: a release joins
    /// `aggregate_releases` under its own region, where the global view
    /// reads it; an ack for a request made in this region is recorded with
    /// the request (`ErasureRecords.record`: checked against it, and the
    /// completion signed here, by `completer`, once every expected region has
    /// acked) if `trust` says its signer is a node of the region it names. Intents are acted on by `FederationSync` once held.
    static func apply(_ entries: [FederationEntry], here region: RegionID, completer: String, key: Ed25519PrivateKey, now: Timestamp,
                      trusting trust: FederationTrust?, in database: Database) throws {
        for entry in entries where entry.origin != region {
            switch entry.body.record {
            case .aggregate(let release)?:
                try database.execute("""
                    INSERT OR IGNORE INTO aggregate_releases (release_id, name, region, kind, dataset, result, mechanism, epsilon, delta,
                        noise_scale, released_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [release.releaseID, release.name.rawValue, release.region.rawValue, release.kind.rawValue, release.dataset.rawValue,
                          AggregateResult(release.result).encoded, release.mechanism.rawValue, release.epsilon, release.delta,
                          release.noiseScale, release.releasedAt.milliseconds])
            case .erasureAck(let ack)?:
                // Signed by a node of the region it speaks for (when the federation's rosters are known).
                guard ack.region == entry.origin, trust?.trusts(ack.publicKey, node: ack.node, region: ack.region) != false,
                      let request = try ErasureRecords.find(ack.erasureID, in: database),
                      request.originRegion == region, !request.acks.contains(where: { $0.region == ack.region }) else { continue }
                do {
                    _ = try ErasureRecords.record(ack, here: region, completer: completer, key: key, now: max(now, ack.erasedAt), in: database)
                } catch is ErasureRecords.UnexpectedAck {
                    // It does not answer the request (checked before anything is written): kept out of the certificate.
                }
            case .erasureIntent?, .noisedEmbedding?, nil:
                continue
            }
        }
    }
}

extension Release {
    /// The release as the federation carries it.
    func federated(policyVersion: Int64) throws -> AggregateRelease {
        let result: AggregateRelease.Result
        switch self.result {
        case .value(let value): result = .value(value)
        case .values(let values): result = .values(values.map { AggregateRelease.Category(label: $0.0, value: $0.1) })
        }
        return try AggregateRelease(releaseID: releaseID, name: try Name(name, what: "aggregate name"), region: try RegionID(region),
                                    kind: try Name(kind, what: "aggregate kind"), dataset: try Name(dataset, what: "dataset"),
                                    result: result, mechanism: try Name(mechanism, what: "mechanism"), epsilon: epsilon, delta: delta,
                                    noiseScale: noiseScale, releasedAt: releasedAt, policyVersion: policyVersion)
    }
}

extension AggregateResult {
    init(_ result: AggregateRelease.Result) {
        switch result {
        case .value(let value): self = .value(value)
        case .values(let categories): self = .values(categories.map { ($0.label, $0.value) })
        }
    }
}
