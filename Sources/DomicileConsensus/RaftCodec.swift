import DomicileModel

/// The region log's binary formats (docs/FORMATS.md, "Region log"): messages
/// between nodes, and the entries and hard state a node stores. Big-endian,
/// each top-level value starting with a version byte; a decoder refuses,
/// with a typed error, anything malformed, oversized, or inconsistent (an
/// append whose entries do not follow `prevIndex`), and never traps.
public enum RaftCodec {
    public static let version: UInt8 = 1
    /// The largest message accepted (an append is bounded well below this by
    /// `RaftSettings.appendBytesMax`; a snapshot carries a reference, or
    /// state streamed in bounded chunks).
    public static let messageBytesMax = 64 << 20
    public static let entryBytesMax = 16 << 20
    public static let appendEntriesCountMax = 65_536
    /// The largest term or index accepted. A term grows by one per election
    /// and an index by one per entry, so an honest node never gets near
    /// 2^62; refusing larger ones at the border keeps every `+ 1` on them in
    /// range inside the machine.
    public static let positionMax: UInt64 = 1 << 62

    public enum Failure: Error, Equatable, Sendable {
        case truncated
        case unsupportedVersion(UInt8)
        case unknownMessageType(UInt8)
        case tooLarge(String)
        case malformed(String)
    }

    // MARK: Messages

    public static func encode(_ message: RaftMessage) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64)
        writer.write(version)
        writer.write(message.kind.rawValue)
        writer.write(message.term)
        writer.write8(string: message.from.rawValue)
        writer.write8(string: message.to.rawValue)
        switch message.body {
        case .preVote(let lastIndex, let lastTerm):
            writer.write(lastIndex)
            writer.write(lastTerm)
        case .vote(let lastIndex, let lastTerm, let transfer):
            writer.write(lastIndex)
            writer.write(lastTerm)
            writer.write(transfer ? 1 as UInt8 : 0)
        case .preVoteResponse(let granted), .voteResponse(let granted):
            writer.write(granted ? 1 as UInt8 : 0)
        case .append(let prevIndex, let prevTerm, let entries, let commit):
            writer.write(prevIndex)
            writer.write(prevTerm)
            writer.write(commit)
            writer.write(UInt32(entries.count))
            for entry in entries { write(entry, into: &writer) }
        case .appendResponse(let index, let rejected, let hint):
            writer.write(index)
            writer.write(rejected ? 1 as UInt8 : 0)
            writer.write(hint)
        case .heartbeat(let commit, let readRound):
            writer.write(commit)
            writer.write(readRound)
        case .heartbeatResponse(let readRound):
            writer.write(readRound)
        case .snapshot(let snapshot):
            write(snapshot.metadata, into: &writer)
            writer.write(UInt32(snapshot.payload.count))
            writer.write(raw: snapshot.payload)
        case .timeoutNow:
            break
        case .readIndex(let context):
            writer.write(context)
        case .readIndexResponse(let context, let index):
            writer.write(context)
            writer.write(index)
        }
        return writer.bytes
    }

    public static func decodeMessage(_ bytes: [UInt8]) throws(Failure) -> RaftMessage {
        guard bytes.count <= messageBytesMax else { throw .tooLarge("message of \(bytes.count) bytes") }
        var reader = BinaryReader(bytes, what: "region log message")
        let message = try readMessage(&reader)
        guard reader.isAtEnd else { throw .malformed("trailing bytes") }
        return message
    }

    private static func readMessage(_ reader: inout BinaryReader) throws(Failure) -> RaftMessage {
        try readVersion(&reader)
        let rawKind = try reading { () throws(ModelError) in try reader.readUInt8() }
        guard let kind = RaftMessage.Kind(rawValue: rawKind) else { throw .unknownMessageType(rawKind) }
        let term = try readPosition(&reader)
        let from = try readNode(&reader)
        let to = try readNode(&reader)
        let body = try readBody(kind, term: term, &reader)
        return RaftMessage(from: from, to: to, term: term, body: body)
    }

    private static func readBody(_ kind: RaftMessage.Kind, term: UInt64, _ reader: inout BinaryReader) throws(Failure) -> RaftMessage.Body {
        func u64() throws(Failure) -> UInt64 { try reading { () throws(ModelError) in try reader.readUInt64() } }
        func position() throws(Failure) -> UInt64 { try readPosition(&reader) }
        func flag() throws(Failure) -> Bool { try readFlag(&reader) }
        switch kind {
        case .preVote: return .preVote(lastIndex: try position(), lastTerm: try position())
        case .vote: return .vote(lastIndex: try position(), lastTerm: try position(), transfer: try flag())
        case .preVoteResponse: return .preVoteResponse(granted: try flag())
        case .voteResponse: return .voteResponse(granted: try flag())
        case .append:
            let prevIndex = try position(), prevTerm = try position(), commit = try position()
            guard prevTerm <= term else { throw .malformed("prevTerm beyond the message term") }
            let count = Int(try reading { () throws(ModelError) in try reader.readUInt32() })
            guard count <= appendEntriesCountMax else { throw .tooLarge("\(count) entries") }
            var entries: [LogEntry] = []
            var expected = prevIndex
            var lastTerm = prevTerm
            for _ in 0..<count {
                let entry = try readEntryBody(&reader)
                guard expected < UInt64.max, entry.index == expected + 1 else { throw .malformed("entries do not follow prevIndex") }
                guard entry.term >= lastTerm, entry.term <= term else { throw .malformed("entry terms out of order") }
                expected = entry.index
                lastTerm = entry.term
                entries.append(entry)
            }
            return .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
        case .appendResponse: return .appendResponse(index: try position(), rejected: try flag(), hint: try position())
        case .heartbeat: return .heartbeat(commit: try position(), readRound: try u64())
        case .heartbeatResponse: return .heartbeatResponse(readRound: try u64())
        case .snapshot:
            let metadata = try readMetadata(&reader)
            guard metadata.term <= term else { throw .malformed("snapshot term beyond the message term") }
            let payload = try readBytes32(&reader, max: messageBytesMax)
            return .snapshot(Snapshot(metadata: metadata, payload: payload))
        case .timeoutNow: return .timeoutNow
        case .readIndex: return .readIndex(context: try u64())
        case .readIndexResponse: return .readIndexResponse(context: try u64(), index: try position())
        }
    }

    // MARK: Stored values

    /// One stored entry: `version · entry`.
    public static func encode(_ entry: LogEntry) -> [UInt8] {
        var writer = BinaryWriter(capacity: 32)
        writer.write(version)
        write(entry, into: &writer)
        return writer.bytes
    }

    public static func decodeEntry(_ bytes: [UInt8]) throws(Failure) -> LogEntry {
        var reader = BinaryReader(bytes, what: "region log entry")
        try readVersion(&reader)
        let entry = try readEntryBody(&reader)
        guard reader.isAtEnd else { throw .malformed("trailing bytes") }
        return entry
    }

    /// The hard state: `version · term · commit · vote (u8-prefixed, empty for none)`.
    public static func encode(_ hardState: HardState) -> [UInt8] {
        var writer = BinaryWriter(capacity: 32)
        writer.write(version)
        writer.write(hardState.term)
        writer.write(hardState.commit)
        writer.write8(string: hardState.vote?.rawValue ?? "")
        return writer.bytes
    }

    public static func decodeHardState(_ bytes: [UInt8]) throws(Failure) -> HardState {
        var reader = BinaryReader(bytes, what: "region log hard state")
        try readVersion(&reader)
        let term = try readPosition(&reader)
        let commit = try readPosition(&reader)
        let voteName = try reading { () throws(ModelError) in try reader.read8String() }
        let vote: NodeName?
        if voteName.isEmpty {
            vote = nil
        } else {
            vote = try reading { () throws(ModelError) in try NodeName(voteName) }
        }
        guard reader.isAtEnd else { throw .malformed("trailing bytes") }
        return HardState(term: term, vote: vote, commit: commit)
    }

    /// Snapshot metadata as stored: `version · metadata`.
    public static func encode(_ metadata: SnapshotMetadata) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64)
        writer.write(version)
        write(metadata, into: &writer)
        return writer.bytes
    }

    public static func decodeSnapshotMetadata(_ bytes: [UInt8]) throws(Failure) -> SnapshotMetadata {
        var reader = BinaryReader(bytes, what: "region log snapshot metadata")
        try readVersion(&reader)
        let metadata = try readMetadata(&reader)
        guard reader.isAtEnd else { throw .malformed("trailing bytes") }
        return metadata
    }

    // MARK: Parts

    private enum EntryKind: UInt8 {
        case command = 1, membership = 2
    }

    private static func write(_ entry: LogEntry, into writer: inout BinaryWriter) {
        writer.write(entry.index)
        writer.write(entry.term)
        switch entry.payload {
        case .command(let data):
            writer.write(EntryKind.command.rawValue)
            writer.write(UInt32(data.count))
            writer.write(raw: data)
        case .membership(let membership):
            writer.write(EntryKind.membership.rawValue)
            var body = BinaryWriter(capacity: 64)
            write(membership, into: &body)
            writer.write(UInt32(body.bytes.count))
            writer.write(raw: body.bytes)
        }
    }

    private static func readEntryBody(_ reader: inout BinaryReader) throws(Failure) -> LogEntry {
        let index = try readPosition(&reader)
        let term = try readPosition(&reader)
        let rawKind = try reading { () throws(ModelError) in try reader.readUInt8() }
        let data = try readBytes32(&reader, max: entryBytesMax)
        switch EntryKind(rawValue: rawKind) {
        case .command:
            return LogEntry(index: index, term: term, payload: .command(data))
        case .membership:
            var inner = BinaryReader(data, what: "membership")
            let membership = try readMembership(&inner)
            guard inner.isAtEnd else { throw .malformed("trailing bytes in a membership entry") }
            return LogEntry(index: index, term: term, payload: .membership(membership))
        case nil:
            throw .malformed("unknown entry kind \(rawKind)")
        }
    }

    private static func write(_ metadata: SnapshotMetadata, into writer: inout BinaryWriter) {
        writer.write(metadata.index)
        writer.write(metadata.term)
        write(metadata.membership, into: &writer)
    }

    private static func readMetadata(_ reader: inout BinaryReader) throws(Failure) -> SnapshotMetadata {
        let index = try readPosition(&reader)
        let term = try readPosition(&reader)
        return SnapshotMetadata(index: index, term: term, membership: try readMembership(&reader))
    }

    /// `voters(1) · names · learners(1) · names`, names u8-prefixed and sorted.
    private static func write(_ membership: Membership, into writer: inout BinaryWriter) {
        for group in [membership.voters, membership.learners] {
            writer.write(UInt8(group.count))
            for node in group.sorted() { writer.write8(string: node.rawValue) }
        }
    }

    private static func readMembership(_ reader: inout BinaryReader) throws(Failure) -> Membership {
        var groups: [Set<NodeName>] = []
        for _ in 0..<2 {
            let count = Int(try reading { () throws(ModelError) in try reader.readUInt8() })
            guard count <= Membership.membersCountMax else { throw .tooLarge("\(count) members") }
            var group = Set<NodeName>()
            for _ in 0..<count { group.insert(try readNode(&reader)) }
            guard group.count == count else { throw .malformed("a member is listed twice") }
            groups.append(group)
        }
        do {
            return try Membership(voters: groups[0], learners: groups[1])
        } catch {
            throw .malformed("membership: \(error)")
        }
    }

    private static func readVersion(_ reader: inout BinaryReader) throws(Failure) {
        let found = try reading { () throws(ModelError) in try reader.readUInt8() }
        guard found == version else { throw .unsupportedVersion(found) }
    }

    private static func readPosition(_ reader: inout BinaryReader) throws(Failure) -> UInt64 {
        let value = try reading { () throws(ModelError) in try reader.readUInt64() }
        guard value <= positionMax else { throw .tooLarge("a term or index above 2^62") }
        return value
    }

    private static func readNode(_ reader: inout BinaryReader) throws(Failure) -> NodeName {
        try reading { () throws(ModelError) in try NodeName(try reader.read8String()) }
    }

    private static func readFlag(_ reader: inout BinaryReader) throws(Failure) -> Bool {
        switch try reading({ () throws(ModelError) in try reader.readUInt8() }) {
        case 0: return false
        case 1: return true
        default: throw .malformed("a flag is 0 or 1")
        }
    }

    private static func readBytes32(_ reader: inout BinaryReader, max: Int) throws(Failure) -> [UInt8] {
        let count = Int(try reading { () throws(ModelError) in try reader.readUInt32() })
        guard count <= max else { throw .tooLarge("field of \(count) bytes") }
        return try reading { () throws(ModelError) in try reader.readBytes(count) }
    }

    /// Maps the reader's errors onto the codec's.
    private static func reading<T>(_ body: () throws(ModelError) -> T) throws(Failure) -> T {
        do {
            return try body()
        } catch .truncated {
            throw .truncated
        } catch {
            throw .malformed("\(error)")
        }
    }
}
