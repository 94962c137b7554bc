/// A write (or forwarded call) refused because the region log could not
/// commit it: no leader reachable, no majority, leadership lost. 503
/// `no_quorum` with `Retry-After`.
struct NoQuorum: Error, CustomStringConvertible {
    let reason: String
    var description: String { "no quorum: \(reason)" }
}
