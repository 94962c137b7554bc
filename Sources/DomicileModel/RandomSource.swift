/// Where an operation's random draws come from (the noise of a release or
/// an export). Each operation takes a generator of its own, draws, and
/// drops it, so no generator is shared between threads.
public protocol RandomSource: Sendable {
    func generator() -> any RandomNumberGenerator
}
