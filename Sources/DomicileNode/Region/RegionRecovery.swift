import DomicileConsensus
import DomicileModel
import DomicileStorage
import Foundation

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
