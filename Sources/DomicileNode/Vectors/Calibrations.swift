import DomicileModel
import DomicileVectors

/// The search width each collection with a `target_recall` is calibrated
/// to (`RecallCalibration`), measured in the background on its own vectors:
/// first once it holds `vectorsMin` vectors, then again after as many
/// writes (inserts, replacements, deletions) as half the vectors it was
/// last measured on, so it follows the collection as it grows or churns.
/// Held in memory only: after a restart each collection is measured again
/// (docs/DECISIONS.md, "Recall-targeted search").
final class Calibrations: Sendable {
    /// Vectors a collection holds before it is first measured.
    static let vectorsMin = 100

    private final class Calibrator: Sendable {
        let index: VectorIndex
        let target: Double

        struct State {
            var current: RecallCalibration?
            var writesSince = 0
            var running = false
            var measured = 0
        }

        let state = Locked(State())

        init(index: VectorIndex, target: Double) {
            self.index = index
            self.target = target
        }

        /// Starts a measurement when one is due and none runs.
        func startIfDue() {
            let start = state.withLock { state -> UInt64? in
                let due = state.current.map { state.writesSince >= max(Calibrations.vectorsMin, $0.vectors / 2) }
                    ?? (index.count >= Calibrations.vectorsMin)
                guard due, !state.running else { return nil }
                state.running = true
                state.writesSince = 0
                state.measured += 1
                return UInt64(state.measured)
            }
            guard let start else { return }
            Task.detached(priority: .background) { [self] in
                let result = RecallCalibration.measure(index, target: target, seed: 0x6361_6c69_6272_6174 &+ start)
                state.withLock { state in
                    state.running = false
                    if let result { state.current = result }
                }
                // Writes that came while it ran may make the next one due.
                startIfDue()
            }
        }
    }

    private let calibrators = Locked<[Name: Calibrator]>([:])

    /// The collection's calibrator, made anew when its index or target changed; nil without a target.
    private func calibrator(for collection: VectorCollections.Collection) -> Calibrator? {
        guard let target = collection.definition.targetRecall, case .hnsw = collection.index.kind else { return nil }
        return calibrators.withLock { calibrators in
            let name = collection.definition.name
            if let existing = calibrators[name], existing.index === collection.index, existing.target == target { return existing }
            let calibrator = Calibrator(index: collection.index, target: target)
            calibrators[name] = calibrator
            return calibrator
        }
    }

    /// The collection's calibration now (nil: no target, or not measured yet);
    /// starts a measurement if one is due.
    func current(_ collection: VectorCollections.Collection) -> RecallCalibration? {
        guard let calibrator = calibrator(for: collection) else { return nil }
        calibrator.startIfDue()
        return calibrator.state.withLock { $0.current }
    }

    /// The width a search that names none uses: the calibrated one, else the collection's default.
    func searchEF(_ collection: VectorCollections.Collection) -> Int {
        current(collection)?.ef ?? collection.definition.defaultEF
    }

    /// Counts `count` writes to the collection; starts a measurement if one is due.
    func noteWrites(_ count: Int, to collection: VectorCollections.Collection) {
        guard count > 0, let calibrator = calibrator(for: collection) else { return }
        calibrator.state.withLock { $0.writesSince += count }
        calibrator.startIfDue()
    }
}
