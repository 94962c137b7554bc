/// One entry of the region log.
public struct LogEntry: Hashable, Sendable {
    public enum Payload: Hashable, Sendable {
        /// The shell's command, opaque to the log. A leader appends an empty
        /// command when it is elected, to commit the entries of earlier terms.
        case command([UInt8])
        /// The whole membership after a change; in force once appended.
        case membership(Membership)
    }

    public var index: UInt64
    public var term: UInt64
    public var payload: Payload

    public init(index: UInt64, term: UInt64, payload: Payload) {
        self.index = index
        self.term = term
        self.payload = payload
    }

    /// What the entry weighs against the append limits: its payload plus a
    /// fixed header's worth.
    var weightBytes: Int {
        switch payload {
        case .command(let bytes): return 24 + bytes.count
        case .membership(let membership): return 24 + 65 * membership.members.count
        }
    }
}
