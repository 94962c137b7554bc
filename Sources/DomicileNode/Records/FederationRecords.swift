import DomicileCrypto
import DomicileFederation
import DomicileModel
import DomicileStorage

/// `federation_entries`: the federation's entries this region holds
/// (docs/FEDERATION.md), written through the region log so every node of
/// the region has them; and what applying them does to the node's tables.
enum FederationRecords {
    /// Every entry held, each origin's in sequence order.
    static func entries(in database: Database) throws -> [FederationEntry] {
        try database.fetchAll("SELECT origin, seq, kind, record FROM federation_entries ORDER BY origin, seq") { row in
            guard let origin = try? RegionID(row.text(0)), let seq = UInt64(exactly: row.int64(1)),
                  let kindByte = UInt8(exactly: row.int64(2)), let kind = FederationRecordKind(rawValue: kindByte) else {
                throw StorageError.corrupt(table: "federation_entries", column: "origin, seq, kind")
            }
            guard let bytes = row.optionalBlob(3) else { return FederationEntry(origin: origin, seq: seq, body: .skipped(kind)) }
            guard let record = try? FederationCodec.decodeRecord(kind, bytes) else {
                throw StorageError.corrupt(table: "federation_entries", column: "record")
            }
            return FederationEntry(origin: origin, seq: seq, body: .record(record))
        }
    }

    /// Keeps `entries` (a position already held is left as it is: the
    /// machine hands each position once, and a record is immutable).
    static func insert(_ entries: [FederationEntry], in database: Database) throws {
        for entry in entries {
            let record = try entry.body.record.map { try FederationCodec.encode($0) }
            try database.execute("""
                INSERT OR IGNORE INTO federation_entries (origin, seq, kind, record, record_id) VALUES (?, ?, ?, ?, ?)
                """, [entry.origin.rawValue, Int64(entry.seq), Int64(entry.body.kind.rawValue), record, entry.body.record.map(recordID)])
        }
    }

    /// What a record is about: a release id, an erasure id.
    static func recordID(_ record: FederationRecord) -> String {
        switch record {
        case .aggregate(let release): release.releaseID
        case .erasureIntent(let intent): intent.erasureID
        case .erasureAck(let ack): ack.erasureID
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
            case .erasureIntent?, nil:
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
