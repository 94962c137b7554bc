/// The exchange's timing and bounds.
public struct FederationSettings: Sendable {
    /// Ticks between two digests this region sends (to one peer, chosen at random).
    public var exchangeTicks = 5
    /// Entries in one `deltas` message.
    public var exchangeEntriesMax = 256
    /// Encoded bytes of one `deltas` message; at least one record of the
    /// largest size must fit, so that no record can stall its origin.
    public var exchangeBytesMax = 2 << 20
    /// The largest record body this region publishes or keeps (the same in
    /// every region of a federation; at most the codec's bound).
    public var recordBytesMax = FederationCodec.recordBytesMax

    /// A known-bad machine for the simulator's tests (internal: no
    /// configuration can set it): a region relays its placeholders as
    /// placeholders even to regions the policy lets hold the record, which
    /// then never get it.
    var unsafeRelayPlaceholders = false
    /// Another known-bad machine: a newer noised embedding does not retire
    /// the body it supersedes.
    var unsafeKeepSupersededEmbeddings = false

    public init() {}

    /// Small bounds, so that the simulator's exchanges often stop at a bound and resume.
    public static var testing: FederationSettings {
        var settings = FederationSettings()
        settings.exchangeTicks = 3
        settings.exchangeEntriesMax = 16
        settings.recordBytesMax = 4 << 10
        settings.exchangeBytesMax = settings.recordBytesMax + messageOverheadMax
        return settings
    }

    /// A `deltas` message's bytes besides its records' bodies when it carries
    /// one record: the header with a digest of the most regions a vector
    /// may name, and one entry's fixed part.
    static let messageOverheadMax = 8_192

    func validate() throws(FederationError) {
        guard exchangeTicks >= 1 else { throw .invalidSettings("exchange_ticks must be at least 1") }
        guard exchangeEntriesMax >= 1, exchangeEntriesMax <= FederationCodec.entriesMax else {
            throw .invalidSettings("exchange_entries_max must be 1 to \(FederationCodec.entriesMax)")
        }
        guard recordBytesMax >= 1_024, recordBytesMax <= FederationCodec.recordBytesMax else {
            throw .invalidSettings("record_bytes_max must be 1 KiB to \(FederationCodec.recordBytesMax) bytes")
        }
        guard exchangeBytesMax >= recordBytesMax + Self.messageOverheadMax, exchangeBytesMax <= FederationCodec.messageBytesMax else {
            throw .invalidSettings("exchange_bytes_max must hold one record of record_bytes_max with its message, and fit a message")
        }
    }
}
