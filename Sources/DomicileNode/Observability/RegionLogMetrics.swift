/// The region log in Prometheus text: term, indexes, role, each voter's
/// match index (on the leader), proposal and apply latencies, refusals.
enum RegionLogMetrics {
    static func render(_ log: RegionLog) -> String {
        let status = log.status
        let statistics = log.currentStatistics
        var lines = [
            "# HELP domicile_region_log_term The region log's current term as this node knows it.",
            "# TYPE domicile_region_log_term gauge", "domicile_region_log_term \(status.term)",
            "# HELP domicile_region_log_commit_index Highest entry known committed.",
            "# TYPE domicile_region_log_commit_index gauge", "domicile_region_log_commit_index \(status.commitIndex)",
            "# HELP domicile_region_log_applied_index Highest entry applied to this node's database.",
            "# TYPE domicile_region_log_applied_index gauge", "domicile_region_log_applied_index \(log.appliedIndex)",
            "# HELP domicile_region_log_leader 1 while this node is the region's leader.",
            "# TYPE domicile_region_log_leader gauge", "domicile_region_log_leader \(status.role == .leader ? 1 : 0)",
            "# HELP domicile_region_log_match_index The leader's record of each voter's log.",
            "# TYPE domicile_region_log_match_index gauge",
        ]
        for (voter, match) in status.matchIndexes.sorted(by: { $0.key < $1.key }) {
            lines.append(#"domicile_region_log_match_index{voter="\#(voter)"} \#(match)"#)
        }
        lines += histogram("domicile_region_log_proposal_seconds",
                           "From a batch's proposal to its entry's commit by a majority (leader).", statistics.proposalMicroseconds)
        lines += histogram("domicile_region_log_apply_seconds",
                           "Applying one entry of another node in its transaction (followers).", statistics.applyMicroseconds)
        lines += ["# HELP domicile_region_log_proposals_refused_total Batches refused: no leader, no majority in time, leadership lost.",
                  "# TYPE domicile_region_log_proposals_refused_total counter",
                  "domicile_region_log_proposals_refused_total \(statistics.proposalsRefused)",
                  "# HELP domicile_region_log_messages_refused_total Peer messages refused: malformed or naming another sender.",
                  "# TYPE domicile_region_log_messages_refused_total counter",
                  "domicile_region_log_messages_refused_total \(statistics.messagesRefused)",
                  "# HELP domicile_region_log_entries_applied_total Entries (and installed snapshots) this node's database has applied.",
                  "# TYPE domicile_region_log_entries_applied_total counter",
                  "domicile_region_log_entries_applied_total \(statistics.entriesApplied)"]
        return lines.joined(separator: "\n") + "\n"
    }

    private static func histogram(_ name: String, _ help: String, _ summary: LatencySummary) -> [String] {
        var lines = ["# HELP \(name) \(help)", "# TYPE \(name) histogram"]
        var cumulative = 0
        for (bound, count) in zip(LatencySummary.boundsMilliseconds, summary.bucketCounts) {
            cumulative += count
            lines.append(#"\#(name)_bucket{le="\#(bound / 1_000)"} \#(cumulative)"#)
        }
        lines.append(#"\#(name)_bucket{le="+Inf"} \#(summary.count)"#)
        lines.append("\(name)_sum \(Double(summary.sumMicroseconds) / 1_000_000)")
        lines.append("\(name)_count \(summary.count)")
        return lines
    }
}
