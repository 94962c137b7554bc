/// What the machine asks of its shell after a batch of steps, in this order:
///
/// 1. persist `persist` durably (through the region log, so every node of
///    the region holds it), together with applying `apply` in the same
///    transaction, or apply right after: a restart restores the machine
///    from what was persisted;
/// 2. only then send `messages` (a record published here may be sent only
///    once its sequence number is durable: otherwise a restart could give
///    the number to another record).
public struct FederationReady: Sendable, Equatable {
    /// New entries, in the order they were taken (per origin: by sequence).
    public var persist: [FederationEntry]
    public var messages: [FederationEnvelope]
    /// Of `persist`, the records this region now holds (placeholders
    /// excluded), its own included: store the releases, erase for the
    /// intents that expect this region, collect the acks.
    public var apply: [FederationEntry]
    /// Entries persisted earlier whose bodies are now dropped (superseded or
    /// erased noised embeddings): overwrite each with its placeholder in the
    /// same transaction as `persist`.
    public var retire: [FederationEntry]

    public init(persist: [FederationEntry], messages: [FederationEnvelope], apply: [FederationEntry], retire: [FederationEntry] = []) {
        self.persist = persist
        self.messages = messages
        self.apply = apply
        self.retire = retire
    }

    public var isEmpty: Bool { persist.isEmpty && messages.isEmpty && apply.isEmpty && retire.isEmpty }
}
