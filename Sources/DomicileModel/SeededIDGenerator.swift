/// Ids drawn from a `SeededRandom`: the same seed gives the same sequence,
/// so a test or a simulated run can replay. Not for production: the ids
/// are guessable from the seed.
public final class SeededIDGenerator: IDGenerator {
    private let random: Locked<SeededRandom>

    public init(seed: UInt64) {
        random = Locked(SeededRandom(seed: seed))
    }

    public func next(_ kind: IDKind) -> String {
        let words = random.withLock { [$0.next(), $0.next()] }
        let bytes = words.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) } }
        return kind.id(randomBytes: Array(bytes.prefix(IDKind.randomByteCount)))
    }
}
