/// Generators seeded, one after the other, from one `SeededRandom`: the same
/// seed and the same order of operations give the same draws, so a test or
/// a simulated run replays. Never for production noise: a release's noise
/// must not be predictable.
public final class SeededRandomSource: RandomSource {
    private let seeds: Locked<SeededRandom>

    public init(seed: UInt64) {
        seeds = Locked(SeededRandom(seed: seed))
    }

    public func generator() -> any RandomNumberGenerator {
        SeededRandom(seed: seeds.withLock { $0.next() })
    }
}
