/// Where in the shell's handling of one `Ready` a node crashes. The shell
/// does, in order: write the `Ready` to `raft.sqlite` (one transaction),
/// sync it, send its messages, apply its snapshot and committed entries (each
/// one transaction of the database that also records the applied index),
/// then `advance`. A crash can come between any two of these.
public enum ShellCrashPoint: Hashable, Sendable {
    /// The `Ready`'s transaction is written and not synced: it reaches the
    /// disk whole (`survives`) or is lost whole; nothing was sent.
    case beforeSync(survives: Bool)
    /// Persisted, and nothing sent.
    case beforeSend
    /// Sent, and nothing applied.
    case beforeApply
    /// After this many of the `Ready`'s apply transactions (its snapshot,
    /// then each committed entry).
    case whileApplying(transactions: Int)
    /// Everything applied, `advance` not called.
    case beforeAdvance
}
