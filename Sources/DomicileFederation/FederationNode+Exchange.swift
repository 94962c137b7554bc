import DomicileModel

/// Building deltas for a peer, and taking a peer's deltas.
extension FederationNode {
    /// What `peer` lacks after `theirs`, round-robin over origins (one entry
    /// of each in turn, so no origin's backlog starves the others), in order
    /// per origin, until the exchange's entry or byte bound; `more` when a
    /// bound stopped it. A record the policy keeps from `peer` goes as a
    /// placeholder; a placeholder held here for a record `peer` may hold
    /// ends that origin's run (this region cannot give it, another will); a
    /// retired entry goes as it is (no region gives its body any more).
    func deltas(for peer: RegionID, after theirs: VersionVector,
                attaching digest: VersionVector?) -> (entries: [FederationEntry], more: Bool) {
        var cursors: [(origin: RegionID, next: Int)] = logs.keys.sorted().compactMap { origin in
            let from = theirs[origin]
            let count = logs[origin]!.count
            return from < UInt64(count) ? (origin, Int(from)) : nil
        }
        var entries: [FederationEntry] = []
        var bytes = FederationCodec.deltasHeaderSize(from: region, to: peer, digest: digest)
        while !cursors.isEmpty {
            var position = 0
            while position < cursors.count {
                let (origin, next) = cursors[position]
                let log = logs[origin]!
                let held = log[next]
                let body: FederationEntry.Body
                var bodyBytes: Int?
                switch held.body {
                case .record(let record):
                    if transfer.allows(record, from: origin, to: peer) {
                        body = held.body
                        bodyBytes = held.bodyBytes
                    } else {
                        body = .skipped(record.kind)
                    }
                case .skipped(let kind):
                    if transfer.allows(kind, from: origin, to: peer), !settings.unsafeRelayPlaceholders {
                        cursors.remove(at: position)
                        continue
                    }
                    body = held.body
                case .retired:
                    body = held.body
                }
                let size = FederationCodec.entrySize(origin: origin, bodyBytes: bodyBytes)
                guard entries.count < settings.exchangeEntriesMax, bytes + size <= settings.exchangeBytesMax else {
                    return (entries, true)
                }
                entries.append(FederationEntry(origin: origin, seq: UInt64(next + 1), body: body))
                bytes += size
                if next + 1 == log.count {
                    cursors.remove(at: position)
                } else {
                    cursors[position].next += 1
                    position += 1
                }
            }
        }
        return (entries, false)
    }

    /// Takes each entry that extends its origin's contiguous prefix; a
    /// duplicate changes nothing, an entry beyond a gap is dropped (it comes
    /// again, after the gap, from a later exchange). A record the policy
    /// keeps from this region is held as a placeholder, never applied.
    mutating func accept(_ entries: [FederationEntry]) {
        for entry in entries {
            let held = UInt64(logs[entry.origin]?.count ?? 0)
            if entry.seq <= held {
                if !Self.agree(logs[entry.origin]![Int(entry.seq - 1)].body, entry.body) { conflicts += 1 }
                continue
            }
            // Never when shells persist before they send (a digest claims
            // only what is durable); a region whose store went back in time
            // would see it.
            guard entry.seq == held + 1 else { continue }
            guard case .record(let record) = entry.body else {
                take(entry, bodyBytes: nil)
                continue
            }
            let bodyBytes = FederationCodec.bodySize(of: record)
            guard record.region == entry.origin, bodyBytes <= settings.recordBytesMax else {
                refused += 1
                continue
            }
            if transfer.allows(record, from: entry.origin, to: region) {
                take(entry, bodyBytes: bodyBytes)
            } else {
                take(FederationEntry(origin: entry.origin, seq: entry.seq, body: .skipped(record.kind)), bodyBytes: nil)
            }
        }
    }

    /// Two bodies for one position agree when their kinds do and, if both
    /// are records, the records do.
    static func agree(_ held: FederationEntry.Body, _ received: FederationEntry.Body) -> Bool {
        guard held.kind == received.kind else { return false }
        if case .record(let mine) = held, case .record(let theirs) = received { return mine == theirs }
        return true
    }
}
